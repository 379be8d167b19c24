"""Spend reserved at dispatch, so jobs started together cannot overrun a budget together.

When a job's model gateway starts, the job reserves an estimate of what it will spend (the
feature's ``agent.budget.reserve_usd``, else the mean cost of its WP's earlier jobs, else of the
feature's, else ``MODEL_GATEWAY_RESERVE_USD``) against every budget that applies to it, capped at
what those budgets leave after the other jobs' spend and reservations (``costs.committed``). The
gateway admits the job's calls in memory while they fit in the reservation; a call that would pass
it grows the reservation by another estimate, as far as the budgets allow (``top_up``, off the
gateway's loop), else it is refused. The reservation is settled by the ledger as calls end (a
running job counts the larger of the two) and released when the job ends.

Reservations are taken and grown under one lock: a transaction-scoped advisory lock on
PostgreSQL, the IMMEDIATE transaction's write lock on SQLite (``core.db.advisory_xact_lock``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import close_old_connections, transaction

from agileplus.core.db import advisory_xact_lock
from agileplus.dispatch.costs import ZERO, Allowance, allowance_for, ledger_spend, usage_cost
from agileplus.dispatch.models import DispatchJob, JobState, SpendReservation
from agileplus.features.project_config import budget_config

RESERVATION_LOCK_KEY = 0x5E5E_17ED
HISTORY_JOBS = 20  # the latest ended jobs an estimate is the mean of


@dataclass
class Grant:
    """What a job may spend in all (its earlier attempts included) before it must ask for more."""

    amount: Decimal
    allowance: Allowance  # the budgets' limit for the job when the grant was made


def estimate(job: DispatchJob) -> Decimal:
    """What one job of this WP is expected to spend."""
    configured = budget_config(job.feature.agent_config or {}).get("reserve_usd")
    if configured is not None:
        return configured
    ended = DispatchJob.objects.filter(state__in=JobState.FINAL).exclude(pk=job.pk).order_by("-finished_at")
    for history in (ended.filter(wp_id=job.wp_id), ended.filter(feature_id=job.feature_id)):
        costs = [c for c in (usage_cost(u) for u in history.values_list("usage", flat=True)[:HISTORY_JOBS]) if c > 0]
        if costs:
            return sum(costs, ZERO) / len(costs)
    return Decimal(str(settings.MODEL_GATEWAY_RESERVE_USD))


def reserve(job_id: str) -> Grant | None:
    """Reserve the job's estimate (capped by its budgets) at its start; None: no budget applies."""
    return _grant(job_id, spent=None)


def top_up(job_id: str, spent: Decimal) -> Grant | None:
    """Grow the job's reservation past ``spent`` (what it has spent and holds in flight) by another
    estimate, as far as its budgets allow; the grant is then at most ``spent`` when none is left."""
    return _grant(job_id, spent=spent)


def _grant(job_id: str, *, spent: Decimal | None) -> Grant | None:
    close_old_connections()  # called from the gateway's threads too
    with transaction.atomic():
        advisory_xact_lock(RESERVATION_LOCK_KEY)
        job = DispatchJob.objects.select_related("feature").get(pk=job_id)
        allowance = allowance_for(job)
        if allowance.limit is None:
            return None
        if spent is None:  # at the start: what earlier attempts of the job were billed
            spent = ledger_spend([job_id]).get(job_id, ZERO)
        amount = min(spent + estimate(job), allowance.limit)
        SpendReservation.objects.update_or_create(
            job_id=job_id, defaults={"feature_id": job.feature_id, "wp_id": job.wp_id, "amount_usd": max(amount, ZERO)})
    return Grant(amount, allowance)


def release(job_id: str) -> None:
    """The job ended: its spend is what the ledger billed, nothing stays held for it."""
    SpendReservation.objects.filter(job_id=job_id).delete()
