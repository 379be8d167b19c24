"""One cost ledger across backends, and budgets.

Every adapter reports ``Usage`` from its CLI's stream (Claude's ``total_cost_usd``, Codex's
``turn.completed.usage`` priced from the price table, Gemini's stats, Aider's ``Cost:`` lines);
the runner keeps the job's latest cumulative figures in ``DispatchJob.usage``. The ledger is
those rows summed; budgets come from the feature's ``agent.budget`` config::

    agent:
      budget: {job_usd: 2.00, wp_usd: 5.00, feature_usd: 40.00, day_usd: 100.00, reserve_usd: 0.50}

A running job's spend counts as the larger of what it reserved and what the ledger billed it
(``dispatch/reservations.py``): ``reserve_usd`` is what a job reserves when it starts (else its
WP's history says).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db.models import Count, Q, Sum
from django.utils import timezone

from agileplus.core.errors import DomainError
from agileplus.dispatch.models import DispatchJob, JobState, ModelCall, SpendReservation
from agileplus.features.project_config import budget_config

GROUPINGS = ("agent", "wp", "day", "feature", "model", "account")
# Groupings only the model gateway's per-call rows (ModelCall) can give: a job may call several.
CALL_GROUPINGS = ("model", "account")
ZERO = Decimal("0")


def usage_cost(usage: dict | None) -> Decimal:
    try:
        return Decimal(str((usage or {}).get("cost_usd") or 0))
    except InvalidOperation:
        return ZERO


def usage_priced(usage: dict | None) -> bool:
    """False for a run with tokens but no cost (its model has no price): its cost is unknown."""
    usage = usage or {}
    tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
    return not tokens or usage.get("cost_usd") not in (None, "")


def _spent(jobs) -> Decimal:
    return sum((usage_cost(u) for u in jobs.values_list("usage", flat=True)), ZERO)


def ledger_spend(job_ids) -> dict[str, Decimal]:
    """What the gateway's ledger billed each job so far (its calls that reached a provider)."""
    rows = (ModelCall.objects.filter(job_id__in=job_ids).exclude(outcome="refused").values("job_id")
            .annotate(cost=Sum("cost_usd")).values_list("job_id", "cost"))
    return {job_id: cost or ZERO for job_id, cost in rows}


def committed(jobs) -> Decimal:
    """What ``jobs`` spent or hold: a running job with a reservation counts the larger of it and
    what the ledger billed it so far (settled as its calls end); any other job its usage."""
    held = dict(SpendReservation.objects.filter(job__in=jobs, job__state__in=JobState.HELD)
                .values_list("job_id", "amount_usd"))
    billed = ledger_spend(list(held))
    return _spent(jobs.exclude(pk__in=list(held))) + sum(
        (max(amount, billed.get(job_id, ZERO)) for job_id, amount in held.items()), ZERO)


@dataclass
class Allowance:
    """What one run may still spend, and which budget binds."""

    limit: Decimal | None
    budget: str = ""

    def crossed(self, cost: Decimal) -> bool:
        return self.limit is not None and cost > self.limit


def allowance_for(job: DispatchJob) -> Allowance:
    """The tightest of the job/WP/feature/day budgets, minus what others spent or hold reserved."""
    limits = budget_config(job.feature.agent_config or {})
    others = DispatchJob.objects.exclude(pk=job.pk)
    options: list[tuple[Decimal, str]] = []
    if "job_usd" in limits:
        options.append((limits["job_usd"], "job_usd"))
    if "wp_usd" in limits:
        options.append((limits["wp_usd"] - committed(others.filter(wp_id=job.wp_id)), "wp_usd"))
    if "feature_usd" in limits:
        options.append((limits["feature_usd"] - committed(others.filter(feature_id=job.feature_id)), "feature_usd"))
    if "day_usd" in limits:
        start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        options.append((limits["day_usd"] - committed(others.filter(queued_at__gte=start)), "day_usd"))
    if not options:
        return Allowance(None)
    limit, name = min(options)
    return Allowance(max(limit, ZERO), name)


@dataclass
class LedgerRow:
    key: str
    jobs: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: Decimal  # the priced runs' cost
    unpriced: int = 0  # runs with tokens but no price: the row's total is then unknown

    @property
    def total(self) -> Decimal | None:
        """The row's cost, None ("unknown") when a run in it has no price: never a false $0."""
        return None if self.unpriced else self.cost_usd

    def as_dict(self) -> dict:
        return {"key": self.key, "jobs": self.jobs, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cached_input_tokens": self.cached_input_tokens,
                "cost_usd": None if self.total is None else str(self.total), "priced_cost_usd": str(self.cost_usd),
                "unpriced_runs": self.unpriced}


def ledger_total(rows: list[LedgerRow]) -> Decimal | None:
    """The rows' cost together; None when any is unknown."""
    return None if any(r.total is None for r in rows) else sum((r.cost_usd for r in rows), ZERO)


def money(amount: Decimal | None, places: int = 4) -> str:
    """``0.0123`` or ``unknown`` (a model with no price), for people."""
    return "unknown" if amount is None else f"{amount:.{places}f}"


def ledger(*, feature_id: int | None = None, by: str = "agent", since: dt.datetime | None = None) -> list[LedgerRow]:
    """Tokens and USD per agent, WP, day or feature, summed from every job's usage."""
    if by not in GROUPINGS:
        raise DomainError(f"cannot group costs by '{by}'", field="by", fix=f"use one of {', '.join(GROUPINGS)}")
    if by in CALL_GROUPINGS:
        return call_ledger(feature_id=feature_id, by=by, since=since)
    jobs = DispatchJob.objects.select_related("wp", "feature").order_by("queued_at")
    if feature_id is not None:
        jobs = jobs.filter(feature_id=feature_id)
    if since is not None:
        jobs = jobs.filter(queued_at__gte=since)
    rows: dict[str, LedgerRow] = {}
    totals: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "in": 0, "out": 0, "cached": 0, "cost": ZERO,
                                                   "unpriced": 0})
    for job in jobs.only("harness", "usage", "queued_at", "wp__code", "feature__slug"):
        key = {"agent": job.harness, "wp": f"{job.feature.slug} {job.wp.code}",
               "day": timezone.localtime(job.queued_at).date().isoformat(), "feature": job.feature.slug}[by]
        t, usage = totals[key], job.usage or {}
        t["jobs"] += 1
        t["in"] += int(usage.get("input_tokens") or 0)
        t["out"] += int(usage.get("output_tokens") or 0)
        t["cached"] += int(usage.get("cached_input_tokens") or 0)
        t["cost"] += usage_cost(usage)
        t["unpriced"] += 0 if usage_priced(usage) else 1
    for key, t in totals.items():
        rows[key] = LedgerRow(key, t["jobs"], t["in"], t["out"], t["cached"], t["cost"], t["unpriced"])
    if by in ("wp", "day", "feature"):  # in their own order (WP03 before WP04), not by first dispatch
        return [rows[key] for key in sorted(rows, key=natural_key)]
    return list(rows.values())


def call_ledger(*, feature_id: int | None, by: str, since: dt.datetime | None) -> list[LedgerRow]:
    """Tokens and USD per model or provider account, from the gateway's row of each call (as the
    provider billed it); ``jobs`` counts the jobs that made those calls."""
    calls = ModelCall.objects.exclude(outcome="refused")
    if feature_id is not None:
        calls = calls.filter(feature_id=feature_id)
    if since is not None:
        calls = calls.filter(ended_at__gte=since)
    grouped = calls.values(by).annotate(
        jobs=Count("job", distinct=True), input=Sum("input_tokens"), output=Sum("output_tokens"),
        cached=Sum("cached_input_tokens"), cost=Sum("cost_usd"),
        unpriced=Count("id", filter=Q(cost_usd__isnull=True) & (Q(input_tokens__gt=0) | Q(output_tokens__gt=0))))
    rows = [LedgerRow(g[by] or "(unnamed)", g["jobs"], g["input"] or 0, g["output"] or 0, g["cached"] or 0,
                      (g["cost"] or ZERO).normalize(), g["unpriced"]) for g in grouped]
    return sorted(rows, key=lambda r: natural_key(r.key))


def natural_key(text: str) -> list:
    """``003-auth WP10`` after ``003-auth WP9``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def feature_cost(feature_id: int) -> Decimal:
    return _spent(DispatchJob.objects.filter(feature_id=feature_id))
