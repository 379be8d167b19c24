"""Network partitions on the multi-host bed (tests/support/multihost.py): a worker host cut off
mid-job, the relay cut off from NATS, a worker cut off from the origin before its push, the web
host cut off from PostgreSQL, 100 ms latency and 1 % loss on a worker's database and broker
connections (a userspace forwarder: this kernel has no netem). After
each, the fault suite's invariants hold (every WP in a legal state, no job completed twice, the
audit chain verifies)."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import Counter

import pytest
from django.utils import timezone

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob, JobCommit, JobLogLine
from agileplus.events.models import Event
from agileplus.features.models import Feature
from harnesses.process import all_marked
from tests.faults.test_worker_and_agent_faults import assert_invariants
from tests.support.farm import wait_until
from tests.support.multihost import (
    assert_every_event_reached_the_consumer_once,
    consume,
    layered_dag,
    observing,
    require_bed,
    running_farm,
    unmerged_wps,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def bed_db(django_db_blocker):
    require_bed()
    with django_db_blocker.unblock():
        yield


def agents_of(job_id: str, attempt: int) -> list[int]:
    """Agent processes (any host: one machine's /proc) still running for that attempt."""
    return [pid for pid, mark in all_marked().items() if mark.endswith(f":{job_id}.{attempt}")]


def test_a_worker_host_cut_off_mid_job_loses_it_to_another_host_and_is_fenced_when_the_link_heals(
        tmp_path, bed_db):
    with running_farm(tmp_path, workers=2, wps={"WP01": []}, behaviour="sleep_first:120,commit:1",
                      agent={"retries": 2}) as farm, observing(farm.services):
        started = farm.cli("implement", "003", "--wp", "WP01", "--no-wait", "--actor", "human:alice")
        assert started.returncode == 0, started.stdout + started.stderr
        job = wait_until(lambda: DispatchJob.objects.filter(state="running").first(), timeout=60,
                         what="the agent to start")
        cut_off = job.worker.split("@")[1]
        farm.bed.cut(cut_off)
        taken = wait_until(lambda: DispatchJob.objects.filter(pk=job.id, attempt=2, state="running").first(),
                           timeout=60, what="another host to take the job over")
        farm.bed.heal(cut_off)
        healed_at = timezone.now()
        assert agents_of(job.id, 1), "the cut-off host's agent should still be running (it sleeps 120 s)"
        wait_until(lambda: agents_of(job.id, 1) == [], timeout=60, what="the cut-off host's agent to be stopped")
        done = wait_until(lambda: DispatchJob.objects.filter(pk=job.id, state="succeeded").first(), timeout=90,
                          what="the new host to finish the job")
        time.sleep(3)  # the cut-off worker has had time to try its late writes

        assert taken.worker != job.worker and done.worker == taken.worker and done.attempt == 2
        assert not JobCommit.objects.filter(job=done, attempt=1).exists()
        assert not JobLogLine.objects.filter(job=done, attempt=1, timestamp__gt=healed_at + dt.timedelta(
            seconds=1)).exists()
        assert_invariants(Feature.objects.get())


# Holds the job's row lock in an open transaction, as a worker does between the statements of
# append_log or finish_job, then waits: the state a host's connection is in when its cable is pulled.
HOLD_THE_JOB_ROW = """
import sys, time, django
django.setup()
from django.db import transaction
from agileplus.dispatch.models import DispatchJob
with transaction.atomic():
    DispatchJob.objects.select_for_update().get(pk=sys.argv[1])
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_host_cut_off_inside_a_transaction_does_not_hold_its_job_row_and_the_job_is_taken_over(
        tmp_path, bed_db):
    with running_farm(tmp_path, workers=2, wps={"WP01": []}, behaviour="sleep_first:120,commit:1",
                      agent={"retries": 2}) as farm, observing(farm.services):
        farm.cli("implement", "003", "--wp", "WP01", "--no-wait", "--actor", "human:alice")
        job = wait_until(lambda: DispatchJob.objects.filter(state="running").first(), timeout=60,
                         what="the agent to start")
        cut_off = job.worker.split("@")[1]
        holder = farm.bed.spawn(cut_off, "row-lock", [sys.executable, "-c", HOLD_THE_JOB_ROW, job.id],
                                farm.env("/tmp/lock"), private_tmp=True)
        wait_until(lambda: "locked" in holder.output(), timeout=30, what="the row lock to be taken")
        farm.bed.cut(cut_off)
        cut_at = time.monotonic()
        taken = wait_until(lambda: DispatchJob.objects.filter(pk=job.id, attempt=2, state="running").first(),
                           timeout=90, what="another host to take the job over")
        took = time.monotonic() - cut_at
        farm.bed.heal(cut_off)

        assert taken.worker != job.worker
        # lease (5 s) + a reap (every 10 s) + the database noticing the dead peer (AGILEPLUS_DB_DEAD_PEER_SECONDS)
        assert took < 60, f"the takeover took {took:.0f} s"


def test_events_written_while_the_relay_is_cut_off_from_nats_reach_a_consumer_once_after_healing(
        tmp_path, bed_db):
    with running_farm(tmp_path, workers=1, wps={"WP01": [], "WP02": ["WP01"]}, behaviour="commit:1") as farm, \
            observing(farm.services):
        wait_until(lambda: not Event.objects.filter(published_at__isnull=True).exists(), timeout=60,
                   what="the import's events to be published")
        before = consume(farm.bed, "ctl", farm.services)
        farm.bed.block("relay", "nats")
        shipped = farm.cli("implement", "003", "--all", "--wait", "--actor", "human:alice")
        stranded = Event.objects.filter(published_at__isnull=True).count()
        farm.bed.unblock("relay", "nats")
        wait_until(lambda: not Event.objects.filter(published_at__isnull=True).exists(), timeout=90,
                   what="the relay to publish what waited in the outbox")
        after = consume(farm.bed, "ctl", farm.services)

        assert shipped.returncode == 0, shipped.stdout + shipped.stderr
        assert stranded > 0, "nothing waited in the outbox: the cut did not happen"
        received = Counter(m["id"] for m in before + after)
        assert [i for i, n in received.items() if n > 1] == []
        assert set(Event.objects.values_list("id", flat=True)) == set(received)
        assert_invariants(Feature.objects.get())


def test_a_worker_cut_off_from_the_origin_before_its_push_fails_the_job_cleanly_and_main_is_untouched(
        tmp_path, bed_db):
    with running_farm(tmp_path, workers=1, wps={"WP01": []}, behaviour="sleep:4,commit:1",
                      agent={"retries": 0}) as farm, observing(farm.services):
        main_before = farm.repo.head("main")
        farm.cli("implement", "003", "--wp", "WP01", "--no-wait", "--actor", "human:alice")
        job = wait_until(lambda: DispatchJob.objects.filter(state="running").first(), timeout=60,
                         what="the agent to start")
        farm.bed.block("w1", "origin")
        finished = wait_until(lambda: DispatchJob.objects.filter(pk=job.id, state__in=["failed", "succeeded"])
                              .first(), timeout=120, what="the job to end")
        farm.bed.unblock("w1", "origin")
        feature = Feature.objects.get()
        wp = feature.work_packages.get(code="WP01")

        assert (finished.state, finished.result.get("pushed")) == ("failed", False)
        assert "could not be pushed to the origin" in finished.error
        assert wp.state == "blocked" and farm.repo.head("main") == main_before
        assert not farm.repo.has_branch("feat/003-auth-system-WP01")
        assert_invariants(feature)


def test_the_web_host_cut_off_from_postgresql_answers_503_and_writes_nothing(tmp_path, bed_db):
    with running_farm(tmp_path, workers=1, web=True, wps={"WP01": []}) as farm, observing(farm.services):
        token = farm.bed.exec("ctl", [sys.executable, "manage.py", "api_token", "alice", "--role", "human"],
                              farm.env("/tmp/cli"), private_tmp=True).stdout.split()[-1]
        feature = Feature.objects.get()
        audit, events = AuditEntry.objects.count(), Event.objects.count()
        transition = f"/api/features/{feature.slug}/wps/WP01/transition"

        farm.bed.block("web", "svc")
        refused = farm.api("POST", transition, token, {"to": "doing"})
        health = farm.api("GET", "/api/health", token)
        farm.bed.unblock("web", "svc")
        written = (AuditEntry.objects.count() - audit, Event.objects.count() - events,
                   feature.work_packages.get(code="WP01").state)
        after = farm.api("POST", transition, token, {"to": "doing"})

        assert refused[0] == 503 and refused[1]["error"]["code"] == "database_unavailable", refused
        assert "nothing was changed" in refused[1]["error"]["message"] and health[0] == 503
        assert written == (0, 0, "planned")
        assert after[0] == 200 and feature.work_packages.get(code="WP01").state == "doing", after
        assert_invariants(feature)


# 20 WPs (5 layers × 4): 98 s here; the slow worker pays ~74 round trips per WP
# (bench/bench_multihost.py). The whole bed suite: about 4 minutes on the 2-core build machine.
LATENCY_DAG = layered_dag(5, 4)


def test_a_twenty_wp_dag_ships_with_100ms_latency_and_1pct_loss_on_a_worker_link(tmp_path, bed_db):
    dag = LATENCY_DAG
    with running_farm(tmp_path, workers=2, wps=dag, behaviour="commit:1", slow={"w1": (0.05, 0.01)}) as farm, \
            observing(farm.services):
        shipped = farm.cli("implement", "003", "--all", "--wait", "--actor", "human:alice", timeout=280)
        feature = Feature.objects.get()
        jobs = list(DispatchJob.objects.values_list("wp__code", "state", "worker"))

        assert shipped.returncode == 0, shipped.stdout + shipped.stderr
        assert feature.state == "shipped"
        assert Counter(code for code, state, _ in jobs if state == "succeeded") == dict.fromkeys(dag, 1), jobs
        assert any(worker == "worker@w1" for *_, worker in jobs), "the slow link ran nothing"
        assert unmerged_wps(farm.repo, dag) == []
        assert_every_event_reached_the_consumer_once(farm)
        assert_invariants(feature)
