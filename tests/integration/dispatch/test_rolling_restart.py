"""A rolling restart hands running jobs on: SIGTERM to a worker (as `docker stop` sends it to the
container's main process) stops its agent at the next tick, pushes what it committed, captures
its session and puts the job back in the queue at once (not when its lease runs out), with one more
attempt allowed; the next worker continues the branch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob, JobCommit
from tests.support.farm import (
    ROOT,
    import_target,
    job_env,
    make_target_repo,
    start_worker,
    stop,
    wait_ready,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_sigterm_to_a_worker_hands_its_running_job_on_to_the_next_worker(tmp_path):
    # attempt 1 commits, then works on (slowly); attempt 2 finds the commit on its branch and ends
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:1,sleep_first:300")
    feature = import_target(repo)
    broker = tmp_path / "broker"
    first = start_worker("w1", tmp_path / "w1", broker_url=None, broker_dir=broker)  # no beat: no reaper
    try:
        wait_ready([first])
        queued = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--no-wait"],
                                cwd=ROOT, env=job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(broker)),
                                capture_output=True, text=True, timeout=60)
        assert queued.returncode == 0, queued.stdout + queued.stderr
        job = DispatchJob.objects.get(feature=feature)
        wait_until(lambda: JobCommit.objects.filter(job=job).exists(), timeout=60, what="attempt 1's commit")
        os.kill(first.proc.pid, signal.SIGTERM)  # the worker's main process only, as `docker stop` does
        handed = wait_until(lambda: DispatchJob.objects.filter(pk=job.pk, state="queued").first(), timeout=60,
                            what="the job handed back to the queue")
        first.proc.wait(timeout=60)
    finally:
        stop([first])
    assert handed.current_activity.startswith("handed on") and (handed.attempt, handed.max_attempts) == (1, 3)
    assert repo.has_branch("feat/003-auth-system-WP01")  # attempt 1's commit was pushed as it stopped

    second = start_worker("w2", tmp_path / "w2", broker_url=None, broker_dir=broker)
    try:
        wait_ready([second])
        done = wait_until(lambda: DispatchJob.objects.filter(pk=job.pk, state="succeeded").first(), timeout=120,
                          what="attempt 2 to finish")
    finally:
        stop([second])
    assert (done.attempt, done.worker) == (2, "worker@w2")
    assert not AuditEntry.objects.filter(feature=feature, metadata__reason="lease_expired").exists()
