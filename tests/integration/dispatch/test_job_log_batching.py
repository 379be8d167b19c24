"""The job log reaches the database in batches even when each write is slow (a worker far from
the database): lines said while a write was under way wait for the next interval."""

from __future__ import annotations

import time

import pytest

from agileplus.dispatch import job_log, runner, services
from agileplus.dispatch.models import JobLogLine
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db(transaction=True)


def test_lines_said_right_after_a_slow_write_are_not_written_one_by_one(monkeypatch):
    _, (wp,) = make_feature_with_wps(1)
    job = services.enqueue_job(wp, actor="human:alice", send=False)
    claim = services.claim_job(job.id, "worker@here")
    run = runner.JobRun(claim)
    writes = []

    def slow_append(claim, lines):  # a write that outlasts the flush interval, as over a 100 ms link
        time.sleep(runner.LOG_FLUSH_SECONDS + 0.2)
        writes.append(len(lines))
        return append(claim, lines)

    append = job_log.append_log
    monkeypatch.setattr(job_log, "append_log", slow_append)
    time.sleep(runner.LOG_FLUSH_SECONDS + 0.1)
    for i in range(6):
        run.say(f"line {i}")
    run.flush()

    assert writes == [1, 5]
    assert list(JobLogLine.objects.filter(job=job).values_list("line", flat=True)) == [f"line {i}" for i in range(6)]
