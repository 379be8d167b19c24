"""Fault injection with real worker processes: a worker frozen past its lease, a broker restarted
under queued work, and agents that flood output, leave a daemon behind or delete their `.git`.
After each: every WP in a legal state, no job completed twice, the audit chain verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.dispatch.models import DispatchJob, JobCommit, JobLogLine
from agileplus.events.models import Event
from agileplus.features.lifecycles import WPState
from tests.support.farm import (
    ROOT,
    import_target,
    job_env,
    make_target_repo,
    outbox_file,
    running_with,
    running_workers,
    task_results,
    wait_until,
)
from tests.support.server import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(240)]


def agileplus(tmp_path, *args: str, broker: str | None = None, **env: str) -> subprocess.CompletedProcess:
    environment = job_env(tmp_path / "cli", broker, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"), **env)
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=180)


def assert_invariants(feature) -> None:
    assert {wp.state for wp in feature.work_packages.all()} <= set(WPState.ALL)
    completed = Counter(Event.objects.filter(feature=feature, subject__endswith=".completed")
                        .values_list("subject", flat=True))
    assert all(n == 1 for n in completed.values()), completed
    assert verify_chain(feature).ok


def test_a_worker_frozen_past_its_lease_is_fenced_when_it_wakes(tmp_path):
    runs = outbox_file(tmp_path, "runs.txt")
    # The first attempt's agent sleeps well past the freeze (the test freezes its worker before it can
    # commit, however slow the machine); the second commits at once.
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour=f"record:{runs},sleep_first:30,commit:1",
                            agent={"retries": 2})
    feature = import_target(repo)

    with running_workers(tmp_path, 2, broker_url=None, loglevel="info") as procs:
        agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--no-wait")
        job = wait_until(lambda: DispatchJob.objects.filter(feature=feature, state="running").first(),
                         timeout=30, what="the agent to start")
        frozen = next(p for p in procs if job.worker == f"worker@{p.name}")
        frozen.kill(signal.SIGSTOP)
        done = wait_until(lambda: DispatchJob.objects.filter(pk=job.id, state="succeeded").first(), timeout=60,
                          what="another worker to finish the job")
        frozen.kill(signal.SIGCONT)
        wait_until(lambda: task_results([frozen], "fenced") == 1, timeout=60,
                   what="the stale worker to wake up, find its attempt gone and end its task")

    assert done.attempt == 2 and done.worker != job.worker
    assert not JobCommit.objects.filter(job=done).exclude(reported_at__gte=done.claimed_at).exists()
    assert JobLogLine.objects.filter(job=done, attempt=1, timestamp__gt=done.finished_at).count() == 0
    assert feature.work_packages.get(code="WP01").state == "for_review"
    assert_invariants(feature)


def test_jobs_queued_while_redis_restarts_all_finish_once(tmp_path):
    port = free_port()
    redis_cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
    redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    broker = f"redis://127.0.0.1:{port}/0"
    repo = make_target_repo(tmp_path, wps={f"WP0{i}": [] for i in range(1, 5)}, behaviour="sleep:1,commit:1")
    feature = import_target(repo)
    try:
        time.sleep(0.5)
        with running_workers(tmp_path, 2, broker_url=broker, lease="3"):
            for code in ("WP01", "WP02"):
                agileplus(tmp_path, "implement", "003", "--wp", code, "--no-wait", broker=broker)
            redis.terminate()  # everything queued in Redis is gone with it (no persistence)
            redis.wait(10)
            for code in ("WP03", "WP04"):  # dispatched while the broker is down: the doorbell fails
                agileplus(tmp_path, "implement", "003", "--wp", code, "--no-wait", broker=broker)
            redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda: set(feature.work_packages.values_list("state", flat=True)) == {"for_review"},
                       timeout=150, what="every WP to reach review after the restart")
    finally:
        redis.terminate()
        redis.wait(10)

    assert DispatchJob.objects.filter(feature=feature, state="succeeded").count() == 4
    assert_invariants(feature)


def test_an_agent_flooding_its_output_keeps_a_bounded_log_and_finishes(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="flood:10000,commit:1")
    feature = import_target(repo)

    result = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline", AGILEPLUS_JOB_LOG_MAX_LINES="2000")

    job = DispatchJob.objects.get(feature=feature)
    assert job.state == "succeeded", result.stdout[-2000:]
    assert JobLogLine.objects.filter(job=job).count() <= 2000
    assert_invariants(feature)


def test_a_daemon_the_agent_left_behind_is_reaped_with_the_job(tmp_path):
    pid_file = outbox_file(tmp_path, "daemon.pid")
    daemon = (f"{sys.executable} -c \"import os,sys,time,signal\n"
              f"if os.fork(): sys.exit(0)\nos.setsid()\nif os.fork(): sys.exit(0)\n"
              f"signal.signal(signal.SIGTERM, signal.SIG_IGN)\nopen('{pid_file}','w').write(str(os.getpid()))\n"
              f"time.sleep(600)\"")
    repo = make_target_repo(tmp_path, wps={"WP01": []}, agent={"command": f"{daemon}; sleep 0.5"})
    feature = import_target(repo)

    agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline")

    wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=10, what="daemon")
    wait_until(lambda: not running_with(str(pid_file)), timeout=10, what="the daemon to be reaped")
    assert DispatchJob.objects.get(feature=feature).state in ("succeeded", "failed")
    assert_invariants(feature)


def test_an_agent_that_deletes_its_git_fails_cleanly_and_the_worker_carries_on(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []},
                            environment={"AGENT_BEHAVIOUR_WP02": "commit:1"},
                            agent={"command": "rm -rf .git; echo gone"})
    feature = import_target(repo)

    broken = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline")
    assert "Traceback" not in broken.stdout + broken.stderr
    assert feature.work_packages.get(code="WP01").state == "blocked"
    job = DispatchJob.objects.get(feature=feature, wp__code="WP01")
    assert job.state == "failed" and job.error

    # The same worker folder serves the next WP normally.
    feature.agent_config = {**feature.agent_config, "command": f"{sys.executable} "
                            f"{ROOT / 'tests/support/agents/scripted_agent.py'}"}
    feature.save(update_fields=["agent_config"])
    agileplus(tmp_path, "implement", "003", "--wp", "WP02", "--inline")
    assert feature.work_packages.get(code="WP02").state == "for_review"
    assert os.path.isdir(repo.path / ".git")
    assert_invariants(feature)
