"""`kill -9` of a worker while its agent runs. In the sandbox the agent (and what it started)
dies with its worker (bwrap --die-with-parent, its PID namespace with it); unsandboxed
(AGILEPLUS_SANDBOX=off) it outlives the worker and the next start of that worker on the host ends
it. Either way that next start records the lost attempt (system:reaper)."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from django.conf import settings

from agileplus.audit.models import AuditEntry
from agileplus.dispatch import reaper, services
from agileplus.dispatch.models import DispatchJob
from agileplus.dispatch.runner import farm_id
from harnesses.process import marked_pids
from tests.support.farm import (
    import_target,
    make_target_repo,
    outbox_file,
    process_alive,
    start_worker,
    stop,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def restart(tmp_path, **extra):
    """Worker w1 on this host; the doorbell rings in the test's own embedded broker folder."""
    return start_worker("w1", tmp_path / "w1", broker_url=None, broker_dir=settings.BROKER_DIR, lease="600",
                        **extra)


def kill_worker_mid_run(tmp_path, **extra):
    """A job whose worker was SIGKILLed while its stubborn agent ran, and the agent's mark."""
    started = outbox_file(tmp_path, "grandchild.pid")  # the sandboxed agent may write only there
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="stubborn",
                            environment={"GRANDCHILD_PID_FILE": str(started)}, agent={"retries": 0})
    feature = import_target(repo)
    job = services.enqueue_job(feature.work_packages.get(code="WP01"), actor="human:alice")
    worker = restart(tmp_path, **extra)
    try:
        wait_until(started.exists, timeout=90, what="the agent's grandchild")
        worker.kill(signal.SIGKILL)  # the worker's whole process group; the agent has a session of its own
        worker.proc.wait(timeout=30)
    finally:
        stop([worker])
    return job, f"{farm_id()}:{job.id}.1"


@pytest.fixture
def killed_worker_with_running_agent(tmp_path):
    job, mark = kill_worker_mid_run(tmp_path)
    yield job, mark, tmp_path
    for pid in marked_pids(mark):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_sandboxed_agent_dies_with_its_killed_worker(killed_worker_with_running_agent):
    _job, mark, _tmp_path = killed_worker_with_running_agent
    wait_until(lambda: not any(process_alive(p) for p in marked_pids(mark)), timeout=30,
               what="the sandboxed agent's processes to end with their worker")


def test_the_next_start_of_the_worker_ends_an_unsandboxed_orphaned_agent(tmp_path):
    _job, mark = kill_worker_mid_run(tmp_path, AGILEPLUS_SANDBOX="off")
    assert marked_pids(mark), "unsandboxed, the agent outlives its worker"
    worker = restart(tmp_path, AGILEPLUS_SANDBOX="off")
    try:
        wait_until(lambda: not any(process_alive(p) for p in marked_pids(mark)), timeout=60,
                   what="the orphaned agent processes to end")
    finally:
        stop([worker])


def test_the_lost_attempt_is_recorded_by_the_reaper_and_the_wp_blocked(killed_worker_with_running_agent):
    job, _mark, tmp_path = killed_worker_with_running_agent
    worker = restart(tmp_path)
    try:
        entry = wait_until(lambda: AuditEntry.objects.filter(feature=job.feature,
                                                             transition="WP01:attempt_lost").first(),
                           timeout=60, what="the lost attempt's audit entry")
    finally:
        stop([worker])

    assert entry.actor == "system:reaper"
    assert {k: entry.metadata[k] for k in ("reason", "job_id", "attempt", "worker", "requeued")} == {
        "reason": "worker_lost", "job_id": job.id, "attempt": 1, "worker": "worker@w1", "requeued": False}
    assert isinstance(entry.metadata["agents_killed"], list)  # none left: they died with the sandbox
    job = DispatchJob.objects.get(pk=job.id)
    assert (job.state, job.wp.state) == ("failed", "blocked")


def test_an_attempt_re_queued_after_its_lease_expired_is_recorded_by_the_reaper(tmp_path):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}))
    job = services.enqueue_job(feature.work_packages.get(code="WP01"), actor="human:alice", send=False, retries=1)
    services.claim_job(job.id, "worker@gone")
    DispatchJob.objects.filter(pk=job.id).update(lease_expires_at="2000-01-01T00:00:00Z")

    reaper.reap_expired()

    entry = AuditEntry.objects.get(feature=feature, transition="WP01:attempt_lost")
    assert entry.actor == "system:reaper"
    assert (entry.metadata["reason"], entry.metadata["worker"], entry.metadata["requeued"]) == (
        "lease_expired", "worker@gone", True)
