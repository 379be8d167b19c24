"""Agent processes whose job attempt nobody holds any more are ended: by a restarting worker
and by the reaper; agents of attempts still held are left alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.dispatch import services
from agileplus.dispatch.runner import farm_id, reap_orphaned_agents
from harnesses.process import JOB_MARK_ENV
from tests.support.farm import import_target, make_target_repo, process_alive, start_worker, stop, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def fake_agent(mark: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                            env={"PATH": "/usr/bin:/bin", JOB_MARK_ENV: f"{farm_id()}:{mark}"},
                            start_new_session=True)


@pytest.fixture
def held_job(tmp_path):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}))
    job = services.enqueue_job(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)
    claim = services.claim_job(job.id, "worker@elsewhere")
    return job.id, claim.attempt


def test_the_reaper_kills_agents_of_attempts_nobody_holds_and_spares_held_ones(held_job):
    job_id, attempt = held_job
    orphan, kept = fake_agent(f"{job_id}.{attempt + 5}"), fake_agent(f"{job_id}.{attempt}")
    try:
        killed = reap_orphaned_agents()
        orphan.wait(timeout=5)
        assert orphan.pid in killed
        assert kept.poll() is None
    finally:
        for p in (orphan, kept):
            p.kill()
            p.wait()


def test_agents_of_another_farm_on_the_same_machine_are_left_alone(held_job):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                env={JOB_MARK_ENV: "0123456789:job_other.1"}, start_new_session=True)
    try:
        assert stranger.pid not in reap_orphaned_agents()
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_restarted_worker_ends_the_agents_its_previous_life_left_behind(tmp_path, held_job):
    job_id, attempt = held_job
    orphan = fake_agent(f"{job_id}.{attempt - 1}")  # an attempt that was re-queued since
    worker = start_worker("w1", tmp_path / "w1", broker_url=None, broker_dir=tmp_path / "broker")
    try:
        wait_until(lambda: not process_alive(orphan.pid), timeout=30, what="the orphaned agent to be killed")
    finally:
        stop([worker])
        orphan.kill()
        orphan.wait()
