"""One form of each command works everywhere: `[FEATURE] WP` for `logs` and `wp transition`
(the README's and the example's), `--note`, `jobs show --log`, and cost and tokens in `jobs show`."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import models

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import SETUP_STREAM, DispatchJob, JobLogLine
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    feature, (wp1, _wp2) = make_feature_with_wps(2)
    job = DispatchJob.objects.create(id="job_forms1", feature=feature, wp=wp1, harness="command", state="succeeded",
                                     usage={"input_tokens": 12000, "output_tokens": 345, "cost_usd": "0.0123"})
    at = dt.datetime(2026, 3, 1, 10, 15, 33, tzinfo=dt.UTC)
    for seq, text in enumerate(["Agent session started", "Tests passing: 15/15"], start=1):
        JobLogLine.objects.create(job=job, attempt=1, seq=seq, timestamp=at, stream="stdout", line=text)
    return job


def test_logs_takes_the_feature_and_the_wp_as_arguments(job):
    result = run_cli(f"logs {job.feature.slug} WP01 --tail 1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["[10:15:33] Tests passing: 15/15"]


def test_logs_takes_the_wp_alone_as_in_the_example(job):
    result = run_cli("logs WP01 --tail 20")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["[10:15:33] Agent session started", "[10:15:33] Tests passing: 15/15"]


def test_wp_transition_takes_the_feature_and_the_wp_as_arguments_and_keeps_the_note(job):
    result = run_cli(f"wp transition {job.feature.slug} WP01 --to doing --note 'picking it up'")
    assert result.exit_code == 0, result.output
    entry = AuditEntry.objects.get(feature=job.feature, transition="WP01:planned->doing")
    assert entry.metadata["note"] == "picking it up"


def test_wp_transition_takes_the_wp_alone_as_in_the_example(job):
    assert run_cli("wp transition WP01 --to doing").exit_code == 0
    result = run_cli("wp transition WP01 --to review")
    assert result.output.splitlines() == ["WP01 moved to for_review"]


def test_wp_transition_refuses_three_references_naming_the_form(job):
    result = run_cli(f"wp transition {job.feature.slug} WP01 WP02 --to doing")
    assert result.exit_code != 0
    assert "expected [FEATURE] WP" in result.output


def test_jobs_show_log_prints_the_whole_log_after_the_summary(job):
    lines = run_cli(f"jobs show {job.id} --log").output.splitlines()
    assert lines[-3:] == ["Log:", "[10:15:33] Agent session started", "[10:15:33] Tests passing: 15/15"]


def test_jobs_show_prints_tokens_and_cost(job):
    lines = run_cli(f"jobs show {job.id}").output.splitlines()
    assert "Tokens: 12,000 in / 345 out" in lines and "Cost: $0.0123" in lines


def test_logs_starts_at_the_agent_session_and_jobs_show_log_keeps_the_implement_preamble(job):
    at = dt.datetime(2026, 3, 1, 10, 15, 30, tzinfo=dt.UTC)
    JobLogLine.objects.filter(job=job).update(seq=models.F("seq") + 2)
    for seq, text in enumerate(["Workspace setup:", "  Branch: feat/x-WP01"], start=1):
        JobLogLine.objects.create(job=job, attempt=1, seq=seq, timestamp=at, stream=SETUP_STREAM, line=text)

    assert run_cli("logs WP01").output.splitlines() == [
        "[10:15:33] Agent session started", "[10:15:33] Tests passing: 15/15"]
    assert run_cli(f"jobs show {job.id} --log").output.splitlines()[-5:] == [
        "Log:", "[10:15:30] Workspace setup:", "[10:15:30]   Branch: feat/x-WP01",
        "[10:15:33] Agent session started", "[10:15:33] Tests passing: 15/15"]
