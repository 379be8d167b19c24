"""An agent cannot turn its output or its git objects into a stuck worker, nor keep its job's
token past the job: a flood is stopped within its timeout and grace with the stop lines in the
log; a tree entry named '..' (which broke salvage, leaving the job to expire its lease) fails the
job and blocks the WP at once with the governance violation; the per-job token is redacted from
the log and revoked."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.job_log import LOG_TRUNCATED
from agileplus.dispatch.models import DispatchJob, JobLogLine
from tests.support.farm import ROOT, import_target, job_env, make_target_repo, outbox_file

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(240)]


def implement_inline(tmp_path, **env: str) -> subprocess.CompletedProcess:
    environment = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"), **env)
    return subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--inline"],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=200)


# Serial: the agent must print 2000 lines within its 1 s timeout, which it may not get the CPU for
# beside three other test processes on a 2-core machine (README, Tests).
@pytest.mark.serial
def test_a_flood_of_output_is_stopped_within_timeout_and_grace_with_the_stop_lines_logged(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="flood_mb:200", agent={"timeout_seconds": 1})
    feature = import_target(repo)

    started = time.monotonic()
    result = implement_inline(tmp_path, AGILEPLUS_JOB_LOG_MAX_LINES="2000", grace="2")
    elapsed = time.monotonic() - started

    job = DispatchJob.objects.get(feature=feature)
    assert job.state == "timed_out", result.stdout[-2000:] + result.stderr[-2000:]
    # timeout 1 s (200 MB take longer to print) + grace 2 s + draining within the grace 2 s + CLI
    # start-up and setup: a wide margin on 2 cores
    assert elapsed < 1 + 2 + 2 + 30, elapsed
    lines = list(JobLogLine.objects.filter(job=job).order_by("seq").values_list("line", flat=True))
    assert len(lines) <= 2000
    assert LOG_TRUNCATED in lines
    assert any(line.startswith("Stopping agent: timeout") for line in lines)
    assert feature.work_packages.get(code="WP01").state == "blocked"


def test_a_tree_entry_named_dotdot_is_a_governance_violation_recorded_at_once(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="dotdot")
    feature = import_target(repo)

    result = implement_inline(tmp_path, lease="60")

    job = DispatchJob.objects.get(feature=feature)
    assert job.state == "failed", result.stdout[-2000:] + result.stderr[-2000:]
    assert "lease" not in job.error and "../escaped.txt" in job.error
    wp = feature.work_packages.get(code="WP01")
    assert wp.state == "blocked"
    entry = AuditEntry.objects.filter(wp=wp).order_by("-seq").first()
    assert entry.transition == "WP01:doing->blocked" and entry.metadata["reason"] == "governance_violation"
    assert any(v["rule"] == "path_escape" for v in entry.metadata["violations"])


def test_the_agent_gets_a_token_for_its_job_that_is_redacted_in_the_log_and_revoked_at_the_end(tmp_path):
    from rest_framework.test import APIClient

    token_file = outbox_file(tmp_path, "token.txt")  # the sandboxed agent may write only there
    repo = make_target_repo(tmp_path, wps={"WP01": []},
                            behaviour=f"env_to_file:AGILEPLUS_TOKEN:{token_file},echo_env:AGILEPLUS_TOKEN,commit:1")
    feature = import_target(repo)

    implement_inline(tmp_path)

    key = token_file.read_text().strip()
    job = DispatchJob.objects.get(feature=feature)
    assert job.state == "succeeded" and len(key) == 40
    assert not JobLogLine.objects.filter(job=job, line__contains=key).exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/features").status_code == 401


def test_an_unexpected_error_in_the_runner_fails_the_job_and_blocks_the_wp_at_once(tmp_path, monkeypatch):
    from agileplus.dispatch import runner, services

    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:1")
    feature = import_target(repo)
    monkeypatch.setattr(services, "send_doorbell", lambda job: None)
    job = services.enqueue_job(feature.work_packages.get(code="WP01"), harness="command", actor="human:alice")

    def broken(*args, **kwargs):  # fault injection: a bug after the agent ran
        raise KeyError("a bug in a runner step")
    monkeypatch.setattr(runner.JobRun, "collect", broken)

    assert runner.run_job(job.id, worker="worker@fault") == "failed"

    job.refresh_from_db()
    assert job.state == "failed" and "KeyError" in job.error and job.lease_expires_at is None
    assert feature.work_packages.get(code="WP01").state == "blocked"
    assert JobLogLine.objects.filter(job=job, line__startswith="internal error in the worker").exists()
