"""Spend reserved at dispatch: a job holds its expected spend against its budgets from its start,
settled by the ledger as its calls end and released when it ends, so jobs started together cannot
all be admitted at $0 and overrun a budget together. On SQLite and (its pass) PostgreSQL."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from agileplus.dispatch import reservations
from agileplus.dispatch.costs import allowance_for
from agileplus.dispatch.gateway import GatewayPlan, budget_admit
from agileplus.dispatch.models import DispatchJob, ModelCall, SpendReservation
from harnesses.gateway import GatewayCall, GatewayJob
from tests.factories import DispatchJobFactory, FeatureFactory, WorkPackageFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.database]


def feature_with(budget: dict, wps: int = 1):
    feature = FeatureFactory(agent_config={"budget": budget})
    return feature, [WorkPackageFactory(feature=feature) for _ in range(wps)]


def bill(job: DispatchJob, cost: str) -> None:
    """One call the gateway metered for ``job`` (its ledger row)."""
    ModelCall.objects.create(job=job, feature_id=job.feature_id, wp_id=job.wp_id, harness=job.harness,
                             provider="anthropic", method="POST", path="/v1/messages", status=200, outcome="ok",
                             cost_usd=Decimal(cost), started_at="2026-12-06T00:00:00Z")


def test_a_job_reserves_its_estimate_and_the_next_one_gets_what_the_budget_leaves():
    feature, (wp,) = feature_with({"feature_usd": "1.00", "reserve_usd": "0.40"})
    jobs = [DispatchJobFactory(wp=wp) for _ in range(4)]

    grants = [reservations.reserve(job.id).amount for job in jobs]

    assert grants == [Decimal("0.40"), Decimal("0.40"), Decimal("0.20"), Decimal("0.00")]


def test_concurrent_starts_never_reserve_more_than_the_budget():
    feature, wps = feature_with({"feature_usd": "1.00", "reserve_usd": "0.30"}, wps=8)
    jobs = [DispatchJobFactory(wp=wp) for wp in wps]
    barrier, grants, errors = threading.Barrier(len(jobs)), {}, []

    def start(job_id: str) -> None:
        try:
            barrier.wait(10)
            grants[job_id] = reservations.reserve(job_id).amount
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start, args=(job.id,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(grants.values(), reverse=True) == [Decimal("0.30")] * 3 + [Decimal("0.10")] + [Decimal("0")] * 4
    assert sum(r.amount_usd for r in SpendReservation.objects.all()) == Decimal("1.00")


def test_a_running_job_counts_what_the_ledger_billed_it_once_past_its_reservation():
    feature, (wp,) = feature_with({"feature_usd": "1.00", "reserve_usd": "0.20"})
    running, other = DispatchJobFactory(wp=wp), DispatchJobFactory(wp=wp)
    reservations.reserve(running.id)
    bill(running, "0.05")
    assert allowance_for(other).limit == Decimal("0.80")  # reserved 0.20, billed 0.05: 0.20 held

    bill(running, "0.45")

    assert allowance_for(other).limit == Decimal("0.50")  # billed 0.50: past its reservation


def test_an_ended_job_holds_nothing_beyond_what_it_spent():
    feature, (wp,) = feature_with({"feature_usd": "1.00", "reserve_usd": "0.60"})
    ended, other = DispatchJobFactory(wp=wp), DispatchJobFactory(wp=wp)
    reservations.reserve(ended.id)
    DispatchJob.objects.filter(pk=ended.pk).update(state="succeeded", usage={"cost_usd": "0.10"})

    reservations.release(ended.id)

    assert allowance_for(other).limit == Decimal("0.90")
    assert not SpendReservation.objects.filter(job=ended).exists()


def plan_for(job: DispatchJob) -> GatewayPlan:
    gateway_job = GatewayJob(routes={})
    plan = GatewayPlan(routes={}, agent_env={}, placeholder=gateway_job.placeholder, job=gateway_job)
    gateway_job.admit = budget_admit(job.id, plan)
    return plan


def admitted(plan: GatewayPlan) -> bool:
    refusal = plan.job.admit(GatewayCall("anthropic", "POST", "/v1/messages"))
    if refusal is not None and refusal.recheck is not None:
        refusal = refusal.recheck(GatewayCall("anthropic", "POST", "/v1/messages"))
    return refusal is None


def test_the_gateway_grows_a_used_up_reservation_while_the_budget_allows_then_refuses():
    feature, (wp,) = feature_with({"feature_usd": "1.00", "reserve_usd": "0.40"})
    job, neighbour = DispatchJobFactory(wp=wp), DispatchJobFactory(wp=wp)
    plan = plan_for(job)
    reservations.reserve(neighbour.id)  # 0.40 held by a job started together with this one

    plan.job.spent = Decimal("0.45")  # past its 0.40: grown to 0.60, all the budget leaves it
    assert admitted(plan)
    assert SpendReservation.objects.get(job=job).amount_usd == Decimal("0.60")
    plan.job.spent = Decimal("0.60")

    assert not admitted(plan)
    assert plan.refusals[0].message.startswith("AgilePlus: the feature_usd budget is spent ($0.6 of $0.60")
