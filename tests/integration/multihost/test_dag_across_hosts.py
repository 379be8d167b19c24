"""The farm on separate network hosts (tests/support/multihost.py): services on their own host,
the origin over HTTP with a password, three worker hosts each with only its own folder. The
7-WP / 3-layer DAG ships with no double run, every event reaches a JetStream consumer once,
the audit chain verifies and main is the merge of every WP."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from agileplus.dispatch.models import DispatchJob
from agileplus.events.models import Event
from agileplus.features.models import Feature
from tests.faults.test_worker_and_agent_faults import assert_invariants
from tests.support.farm import wait_until
from tests.support.multihost import ORIGIN_PASSWORD, consume, observing, require_bed, running_farm

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DAG = {
    "WP01": [], "WP02": [], "WP03": [],
    "WP04": ["WP01", "WP02"], "WP05": ["WP02", "WP03"],
    "WP06": ["WP04"], "WP07": ["WP04", "WP05"],
}


def assert_every_event_reached_the_consumer_once(farm) -> None:
    """The outbox against what a JetStream consumer on another host received: none lost, none twice."""
    ids = list(Event.objects.order_by("id").values_list("id", flat=True))
    wait_until(lambda: not Event.objects.filter(published_at__isnull=True).exists(), timeout=60,
               what="the relay to publish the outbox")
    received = Counter(m["id"] for m in consume(farm.bed, "ctl", farm.services))
    assert [i for i, n in received.items() if n > 1] == [], "duplicates at the consumer"
    assert set(ids) - set(received) == set(), "events lost before the consumer"


def unmerged_wps(repo, wps) -> list[str]:
    """WPs whose branch head on the origin is not in main, or whose file is not in main's tree."""
    files = set(repo.git("ls-tree", "-r", "--name-only", "main").splitlines())
    in_main = {code for code in wps if subprocess.run(
        ["git", "-C", str(repo.path), "merge-base", "--is-ancestor", f"feat/003-auth-system-{code}", "main"]
    ).returncode == 0 and f"{code.lower()}/file_1.txt" in files}
    return sorted(set(wps) - in_main)


def test_a_seven_wp_dag_ships_across_three_worker_hosts_with_the_origin_over_http(tmp_path, django_db_blocker):
    require_bed()
    with django_db_blocker.unblock(), running_farm(tmp_path, wps=DAG, behaviour="sleep:1,commit:1") as farm:
        done = farm.cli("implement", "003", "--all", "--wait", "--actor", "human:alice")
        with observing(farm.services):
            feature = Feature.objects.get()
            assert done.returncode == 0, done.stdout + done.stderr + farm.logs()
            assert feature.state == "shipped"
            assert_invariants(feature)
            jobs = list(DispatchJob.objects.values_list("wp__code", "state", "worker"))
            assert Counter(code for code, state, _ in jobs if state == "succeeded") == dict.fromkeys(DAG, 1), jobs
            assert len({worker for *_, worker in jobs}) >= 2, f"one host ran everything: {jobs}"
            assert unmerged_wps(farm.repo, DAG) == [], farm.repo.subjects()
            assert_every_event_reached_the_consumer_once(farm)
            assert ORIGIN_PASSWORD not in done.stdout + done.stderr + farm.logs()
