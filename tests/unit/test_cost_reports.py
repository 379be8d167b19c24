"""What the spend bought: `agileplus costs --by attempt` lists each attempt with what became of
it, and the cost per merged WP and the wasted attempts (those that did not lead to a merge) are
in the CLI and the API."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from agileplus.api.services import create_api_token
from agileplus.dispatch import cost_reports
from agileplus.dispatch.models import DispatchJob, JobLogLine, ModelCall
from agileplus.review.models import MergeQueueEntry
from tests.factories import DispatchJobFactory, FeatureFactory, WorkPackageFactory
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


def bill(job: DispatchJob, attempt: int, cost: str | None, tokens: int = 100) -> None:
    ModelCall.objects.create(job=job, attempt=attempt, feature_id=job.feature_id, wp_id=job.wp_id,
                             harness=job.harness, provider="anthropic", method="POST", path="/v1/messages",
                             status=200, outcome="ok", input_tokens=tokens, output_tokens=1,
                             cost_usd=None if cost is None else Decimal(cost), started_at="2026-12-06T00:00:00Z")


@pytest.fixture
def farm():
    """WP01 merged after a rejected job and a killed attempt; WP02 timed out; WP03 ejected."""
    feature = FeatureFactory(slug="003-auth")
    wp1, wp2, wp3 = (WorkPackageFactory(feature=feature, code=f"WP0{n}") for n in (1, 2, 3))
    wp1.state = "done"
    wp1.save()
    rejected = DispatchJobFactory(id="job-a", wp=wp1, state="succeeded", attempt=2, finished_at="2026-12-06T01:00Z")
    bill(rejected, 1, "0.10")  # its worker died mid-run: the attempt lost
    bill(rejected, 2, "0.20")
    merged = DispatchJobFactory(id="job-b", wp=wp1, state="succeeded", finished_at="2026-12-06T02:00Z")
    bill(merged, 1, "0.30")
    timed_out = DispatchJobFactory(id="job-c", wp=wp2, state="timed_out")
    bill(timed_out, 1, "0.05")
    ejected = DispatchJobFactory(id="job-d", wp=wp3, state="succeeded", finished_at="2026-12-06T01:00Z")
    bill(ejected, 1, "0.07")
    MergeQueueEntry.objects.create(repo="r", feature=feature, wp=wp3, actor="human:a", state="ejected")
    DispatchJobFactory(id="job-e", wp=wp3, state="queued", attempt=0)  # sent back to its agent
    return feature


def test_each_attempt_says_what_became_of_it(farm):
    found = [(a.wp, a.job_id, a.attempt, a.fate, a.cost_usd) for a in cost_reports.attempts(feature_id=farm.pk)]

    assert found == [("WP01", "job-a", 1, "killed", Decimal("0.1")), ("WP01", "job-a", 2, "rejected", Decimal("0.2")),
                     ("WP01", "job-b", 1, "merged", Decimal("0.3")), ("WP02", "job-c", 1, "timed_out", Decimal("0.05")),
                     ("WP03", "job-d", 1, "ejected", Decimal("0.07")), ("WP03", "job-e", 1, "running", Decimal("0"))]


def test_an_attempt_that_waited_for_a_rate_limit_is_not_wasted(farm):
    JobLogLine.objects.create(job_id="job-a", attempt=1, seq=1, timestamp="2026-12-06T00:30Z",
                              line="Rate limited: waiting for rate limit until 00:31")

    assert cost_reports.attempts(feature_id=farm.pk)[0].fate == "parked"


def test_the_cost_per_merged_wp_counts_all_its_attempts_and_the_wasted_ones_are_summed(farm):
    spent_on = cost_reports.outcomes(feature_id=farm.pk)

    assert (spent_on["merged_wps"], spent_on["cost_per_merged_wp_usd"]) == (1, "0.6")
    assert (spent_on["wasted_attempts"], spent_on["wasted_cost_usd"]) == (4, "0.42")
    assert spent_on["wasted_by_fate"] == {"ejected": 1, "killed": 1, "rejected": 1, "timed_out": 1}


def test_a_wasted_attempt_with_no_price_makes_the_wasted_total_unknown(farm):
    bill(DispatchJob.objects.get(pk="job-c"), 1, None)

    assert cost_reports.outcomes(feature_id=farm.pk)["wasted_cost_usd"] is None


def test_costs_by_attempt_in_the_cli(farm):
    result = run_cli(["costs", farm.slug, "--by", "attempt"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[:5] == ["003-auth", "WP01", "job-a", "#1", "killed"]
    assert lines[-1] == ("Merged WPs: 1 at $0.6000 each; wasted attempts: 4, $0.4200 "
                         "(ejected 1, killed 1, rejected 1, timed_out 1)")


def test_costs_json_and_the_api_give_the_outcomes(farm):
    shown = json.loads(run_cli(["costs", farm.slug, "--json"]).output)["outcomes"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token('reader', 'human', None)}")
    answered = client.get(f"/api/features/{farm.slug}/costs?by=attempt").json()

    assert shown == answered["outcomes"]
    assert answered["outcomes"]["wasted"][0] == {"wp": "003-auth WP01", "job_id": "job-a", "attempt": 1,
                                                 "fate": "killed", "cost_usd": "0.1"}
    assert [r["key"] for r in answered["results"]][-1] == "003-auth WP03 job-e #1 running"
