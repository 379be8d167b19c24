"""The runner's lock on its job row and the gateway's ledger rows, written from other threads of
the same worker while the agent runs. A ledger row's foreign keys take key-share locks on the job,
its WP and its feature; the runner's lock must not conflict with those, or the two wait on each
other in opposite order: docker/smoke's Codex run died of "deadlock detected" in append_log."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from agileplus.dispatch import services
from agileplus.dispatch.gateway import record_call
from agileplus.dispatch.models import ModelCall
from harnesses.gateway import GatewayCall
from tests.factories import make_feature_with_wps

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_ledger_row_is_written_while_the_runner_holds_its_jobs_lock(on_postgres):
    _feature, (wp,) = make_feature_with_wps(1)
    job = services.enqueue_job(wp, actor="human:alice", send=False)
    claim = services.claim_job(job.id, "worker@a")
    held, release = threading.Event(), threading.Event()

    def runner_flushing_its_log() -> None:
        try:
            with transaction.atomic():  # the flush's lock, held as long as a slow flush would
                services.append_log(claim, [(job.queued_at, "agent", "working")])
                held.set()
                release.wait(30)
        finally:
            connection.close()

    def gateway_recording_a_call() -> None:
        try:
            record_call(job, claim.attempt, "worker@a", GatewayCall(provider="openai", method="POST",
                                                                   path="/v1/responses", status=200))
        finally:
            connection.close()

    runner = threading.Thread(target=runner_flushing_its_log)
    runner.start()
    assert held.wait(10)
    gateway = threading.Thread(target=gateway_recording_a_call)
    gateway.start()
    gateway.join(timeout=10)
    written_while_held = not gateway.is_alive()
    release.set()
    runner.join()
    gateway.join()

    assert written_while_held, "the ledger row waited for the runner's lock on the job"
    assert ModelCall.objects.filter(job_id=job.id).count() == 1
