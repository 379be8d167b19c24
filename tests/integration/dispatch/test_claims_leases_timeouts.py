"""Claims, leases, fencing, the timeout path and secrets, with real worker processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection, transaction

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch import claims, job_log, reaper, services
from agileplus.dispatch.models import DispatchJob, JobCommit, JobLogLine
from agileplus.events.models import Event
from tests.support.farm import (
    ROOT,
    import_target,
    job_env,
    make_target_repo,
    outbox_file,
    running_with,
    running_workers,
    start_worker,
    stop,
    task_results,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def agileplus(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def ring_again(job_id: str, env: dict) -> None:
    """A second delivery of the same job's task, as Redis does after its visibility timeout."""
    code = ("import django; django.setup()\n"
            "from agileplus.dispatch.models import DispatchJob\n"
            "from agileplus.dispatch.services import send_doorbell\n"
            f"send_doorbell(DispatchJob.objects.get(pk={job_id!r}))\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "agileplus.settings"},
                   check=True, timeout=60)


def cli_env(tmp_path) -> dict:
    return job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))


def subjects_of(job_id: str) -> list[str]:
    return [s.rsplit(".", 1)[1] for s in
            Event.objects.filter(subject__startswith=f"agileplus.agent.job.{job_id}.").order_by("id")
            .values_list("subject", flat=True)]


def test_exactly_one_of_many_concurrent_claims_wins(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []})
    feature = import_target(repo)
    job = services.enqueue_job(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)
    winners, barrier = [], threading.Barrier(8)

    def contender(i: int) -> None:
        barrier.wait()
        try:
            claim = services.claim_job(job.id, f"w{i}")
            if claim:
                winners.append(claim)
        finally:
            connection.close()

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(winners) == 1
    assert DispatchJob.objects.get(pk=job.id).attempt == 1


def test_a_stale_attempt_cannot_write_results(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []})
    feature = import_target(repo)
    job = services.enqueue_job(feature.work_packages.get(code="WP01"), actor="human:alice", send=False, retries=1)
    stale = services.claim_job(job.id, "sleepy")
    DispatchJob.objects.filter(pk=job.id).update(lease_expires_at="2000-01-01T00:00:00Z")
    reaper.reap_expired()
    fresh = services.claim_job(job.id, "awake")

    assert fresh.attempt == 2
    assert services.heartbeat(stale) is False
    with pytest.raises(claims.StaleAttempt):
        job_log.report_commit(stale, sha="a" * 40, message="feat(WP01): late", files=[])
    assert not JobCommit.objects.filter(job_id=job.id).exists()


def test_the_reaper_passes_over_a_job_row_another_connection_holds_and_requeues_it_once_released(
        tmp_path, on_postgres):
    repo = make_target_repo(tmp_path, wps={"WP01": []})
    feature = import_target(repo)
    job = services.enqueue_job(feature.work_packages.get(code="WP01"), actor="human:alice", send=False, retries=1)
    services.claim_job(job.id, "cut-off")
    DispatchJob.objects.filter(pk=job.id).update(lease_expires_at="2000-01-01T00:00:00Z")
    locked, release = threading.Event(), threading.Event()

    def cut_off_worker_mid_transaction() -> None:
        try:
            with transaction.atomic():
                DispatchJob.objects.select_for_update().get(pk=job.id)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=cut_off_worker_mid_transaction)
    holder.start()
    locked.wait(10)
    started = time.monotonic()
    passed_over = reaper.reap_expired()
    waited = time.monotonic() - started
    release.set()
    holder.join()
    after_release = reaper.reap_expired()

    assert passed_over["requeued"] == [] and waited < 5
    assert after_release["requeued"] == [job.id]
    assert DispatchJob.objects.get(pk=job.id).state == "queued"


def test_the_same_task_delivered_twice_to_two_workers_runs_once(tmp_path):
    runs = outbox_file(tmp_path, "runs.txt")
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour=f"record:{runs},sleep:2,commit:1")
    feature = import_target(repo)
    env = cli_env(tmp_path)

    with running_workers(tmp_path, 2, broker_url=None, loglevel="info") as workers:
        queued = agileplus("implement", "003", "--wp", "WP01", "--no-wait", "--json", env=env)
        job_id = json.loads(queued.stdout)["id"]
        ring_again(job_id, env)
        ring_again(job_id, env)
        wait_until(lambda: DispatchJob.objects.get(pk=job_id).state == "succeeded", timeout=60, what="job to succeed")
        wait_until(lambda: task_results(workers, "not-claimed") == 2, timeout=60,
                   what="both duplicate deliveries to have run and been turned away")

    job = DispatchJob.objects.get(pk=job_id)
    assert job.attempt == 1
    assert runs.read_text().count("WP01 start") == 1
    assert subjects_of(job_id).count("started") == 1
    assert subjects_of(job_id).count("completed") == 1
    assert feature.work_packages.get(code="WP01").state == "for_review"


def test_a_worker_killed_mid_job_is_taken_over_after_its_lease_expires(tmp_path):
    runs = outbox_file(tmp_path, "runs.txt")
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour=f"record:{runs},sleep:4,commit:1",
                            agent={"retries": 2})
    feature = import_target(repo)
    env = cli_env(tmp_path)

    with running_workers(tmp_path, 2, broker_url=None) as procs:
        agileplus("implement", "003", "--wp", "WP01", "--no-wait", env=env)
        job = wait_until(lambda: DispatchJob.objects.filter(feature=feature, state="running").first(),
                         timeout=30, what="a worker to start the agent")
        wait_until(lambda: runs.exists(), timeout=10, what="the agent to start")
        victim = next(p for p in procs if job.worker == f"worker@{p.name}")
        victim.kill(signal.SIGKILL)
        done = wait_until(lambda: DispatchJob.objects.filter(pk=job.id, state__in=["succeeded", "failed"]).first(),
                          timeout=60, what="another worker to finish the job")

    assert done.state == "succeeded"
    assert done.attempt == 2 and done.worker != job.worker
    assert subjects_of(job.id).count("completed") == 1
    assert runs.read_text().count("WP01 end") == 1
    assert feature.work_packages.get(code="WP01").state == "for_review"
    assert verify_chain(feature).ok


def test_an_agent_ignoring_sigterm_and_its_grandchild_are_killed_and_the_wp_blocked(tmp_path):
    pid_file = outbox_file(tmp_path, "grandchild.pid")
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:2,stubborn",
                            environment={"GRANDCHILD_PID_FILE": str(pid_file)})
    feature = import_target(repo)
    env = cli_env(tmp_path)

    with running_workers(tmp_path, 1, broker_url=None, grace="2", lease="10"):
        result = agileplus("implement", "003", "--wp", "WP01", "--timeout", "3", "--wait", env=env)

    assert result.returncode != 0
    assert "Exit code: -1 (timeout)" in result.stdout
    assert "Commits made: 2 (partial work)" in result.stdout
    job = DispatchJob.objects.get(feature=feature)
    assert job.state == "timed_out"
    assert (job.finished_at - job.started_at).total_seconds() < 3 + 2 + 3  # timeout + grace + slack
    assert pid_file.exists()  # the grandchild started
    wait_until(lambda: not running_with(str(pid_file)), timeout=5, what="the grandchild to die")
    entry = AuditEntry.objects.filter(feature=feature).order_by("-seq").first()
    assert entry.transition == "WP01:doing->blocked" and entry.actor == "system:timeout"
    assert {k: entry.metadata[k] for k in ("reason", "timeout_secs", "job_id", "partial_commits")} == {
        "reason": "agent_timeout", "timeout_secs": 3, "job_id": job.id, "partial_commits": 2}
    assert verify_chain(feature).ok


def test_a_configured_secret_reaches_the_agent_and_nothing_else(tmp_path):
    secret = "sk-test-4f9c2e7a1b8d6053"
    seen = outbox_file(tmp_path, "seen.txt")
    repo = make_target_repo(tmp_path, wps={"WP01": []},
                            behaviour=f"env_to_file:API_KEY:{seen},echo_env:API_KEY,print_prompt,commit:1",
                            environment={"API_KEY": "${{ secrets.TEST_API_KEY }}"})
    feature = import_target(repo)
    env = cli_env(tmp_path)

    worker = start_worker("w1", tmp_path / "w1", broker_url=None, broker_dir=tmp_path / "broker",
                          AGILEPLUS_SECRET_TEST_API_KEY=secret)
    try:
        shown = agileplus("implement", "003", "--wp", "WP01", "--wait", env=env)
        logs = agileplus("logs", "WP01", "--feature", "003", env=env)
        job_json = agileplus("jobs", "show", DispatchJob.objects.get(feature=feature).id, "--json", env=env)
    finally:
        stop([worker])

    assert seen.read_text() == secret
    job = DispatchJob.objects.get(feature=feature)
    assert job.state == "succeeded"
    assert "API_KEY=***" in "\n".join(JobLogLine.objects.filter(job=job).values_list("line", flat=True))
    stored = json.dumps([
        list(DispatchJob.objects.values()), list(JobLogLine.objects.values()), list(JobCommit.objects.values()),
        list(Event.objects.values()), list(AuditEntry.objects.values()),
    ], default=str)
    for where, text in {"database": stored, "implement output": shown.stdout + shown.stderr,
                        "logs": logs.stdout, "jobs show": job_json.stdout, "worker log": worker.output()}.items():
        assert secret not in text, f"the secret leaked into {where}"
