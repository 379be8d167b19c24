"""A job that fails before its agent starts (the origin cannot be cloned) says so, and names the
block it recorded (planned->blocked), not the agent screen's doing->blocked."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from agileplus.dispatch.models import DispatchJob
from tests.support.farm import ROOT, import_target, job_env, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_setup_failure_screen_says_the_agent_never_started(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, agent={"retries": 0})
    import_target(repo)
    shutil.rmtree(repo.path)  # the origin moved away after the import
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"))

    done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--inline"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    lines = done.stdout.splitlines()

    assert done.returncode == 1
    assert lines[1] == "Setup failed before the agent started:"
    assert "Audit entry recorded: actor=system:agileplus, transition=WP01:planned->blocked" in lines
    assert "Agent failed:" not in lines and not any("Exit code" in line for line in lines)


def test_a_missing_secret_fails_at_once_without_spending_the_retries(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, agent={"retries": 2},
                            environment={"API_TOKEN": "${{ secrets.SCREENS_NEVER_SET }}"})
    feature = import_target(repo)
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"))

    done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--inline"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    job = DispatchJob.objects.get(feature=feature, wp__code="WP01")

    assert done.returncode == 1
    assert (job.state, job.attempt) == ("failed", 1)
    assert "Reason: secret SCREENS_NEVER_SET (for API_TOKEN) is not set" in done.stdout
