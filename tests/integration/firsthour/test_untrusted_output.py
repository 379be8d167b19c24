"""Agent output is untrusted bytes: NUL characters and endless lines are stored on both databases
(PostgreSQL refuses NUL in text), and the job ends as the agent's exit says, not by a crash."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.core.text import MAX_LINE_CHARS, NUL_REPLACEMENT
from agileplus.dispatch.models import DispatchJob, JobLogLine
from tests.support.farm import ROOT, import_target, job_env, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def implement_inline(tmp_path) -> subprocess.CompletedProcess:
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"))
    return subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--inline"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def run_binary_agent(tmp_path) -> tuple[subprocess.CompletedProcess, DispatchJob]:
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}, behaviour="binary,commit:1"))
    done = implement_inline(tmp_path)
    return done, DispatchJob.objects.get(feature=feature, wp__code="WP01")


def test_an_agent_printing_nul_bytes_on_postgresql_still_succeeds(tmp_path, on_postgres):
    done, job = run_binary_agent(tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert job.state == "succeeded", job.error
    assert not AuditEntry.objects.filter(feature=job.feature, transition__endswith="->blocked").exists()


def test_nul_bytes_in_agent_output_are_stored_visibly_replaced(tmp_path):
    done, job = run_binary_agent(tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = list(JobLogLine.objects.filter(job=job).values_list("line", flat=True))
    binary = next(line for line in lines if line.startswith("binary"))
    assert "\x00" not in binary and binary.startswith(f"binary{NUL_REPLACEMENT}output{NUL_REPLACEMENT}")


def test_an_endless_agent_output_line_is_cut_to_the_line_limit(tmp_path):
    done, job = run_binary_agent(tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    longest = max(len(line) for line in JobLogLine.objects.filter(job=job).values_list("line", flat=True))
    assert longest == MAX_LINE_CHARS
