"""`kill -9` of a worker while its agent runs: the agent (and what it started) outlives it;
the next start of that worker on the host ends them and records the lost attempt (system:reaper)."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from django.conf import settings

from agileplus.audit.models import AuditEntry
from agileplus.dispatch import services
from agileplus.dispatch.models import DispatchJob
from agileplus.dispatch.runner import farm_id
from harnesses.process import marked_pids
from tests.support.farm import import_target, make_target_repo, process_alive, start_worker, stop, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def restart(tmp_path):
    """Worker w1 on this host; the doorbell rings in the test's own embedded broker folder."""
    return start_worker("w1", tmp_path / "w1", broker_url=None, broker_dir=settings.BROKER_DIR, lease="600")


@pytest.fixture
def killed_worker_with_running_agent(tmp_path):
    """A job whose worker was SIGKILLed mid-run, and the mark of its agent's processes."""
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="stubborn",
                            environment={"GRANDCHILD_PID_FILE": str(tmp_path / "grandchild.pid")},
                            agent={"retries": 0})
    feature = import_target(repo)
    job = services.enqueue_job(feature.work_packages.get(code="WP01"), actor="human:alice")
    worker = restart(tmp_path)
    try:
        wait_until(lambda: (tmp_path / "grandchild.pid").exists(), timeout=90, what="the agent's grandchild")
        worker.kill(signal.SIGKILL)  # the worker's whole process group; the agent has a session of its own
        worker.proc.wait(timeout=30)
    finally:
        stop([worker])
    mark = f"{farm_id()}:{job.id}.1"
    assert marked_pids(mark), "the agent should have outlived its worker"
    yield job, mark, tmp_path
    for pid in marked_pids(mark):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_the_next_start_of_the_worker_ends_the_orphaned_agent(killed_worker_with_running_agent):
    job, mark, tmp_path = killed_worker_with_running_agent
    worker = restart(tmp_path)
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
    assert entry.metadata["agents_killed"]
    job = DispatchJob.objects.get(pk=job.id)
    assert (job.state, job.wp.state) == ("failed", "blocked")


def test_an_attempt_re_queued_after_its_lease_expired_is_recorded_by_the_reaper(tmp_path):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}))
    job = services.enqueue_job(feature.work_packages.get(code="WP01"), actor="human:alice", send=False, retries=1)
    services.claim_job(job.id, "worker@gone")
    DispatchJob.objects.filter(pk=job.id).update(lease_expires_at="2000-01-01T00:00:00Z")

    services.reap_expired()

    entry = AuditEntry.objects.get(feature=feature, transition="WP01:attempt_lost")
    assert entry.actor == "system:reaper"
    assert (entry.metadata["reason"], entry.metadata["worker"], entry.metadata["requeued"]) == (
        "lease_expired", "worker@gone", True)
