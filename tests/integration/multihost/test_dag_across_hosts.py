"""The farm on separate network hosts (tests/support/multihost.py): services on their own host,
the origin over HTTP with a password, three worker hosts each with only its own folder. The
7-WP / 3-layer DAG ships with no double run, every event reaches a JetStream consumer once,
the audit chain verifies and main is the merge of every WP."""

from __future__ import annotations

from collections import Counter

import pytest

from agileplus.dispatch.models import DispatchJob
from agileplus.features.models import Feature
from tests.faults.test_worker_and_agent_faults import assert_invariants
from tests.support.multihost import (
    ORIGIN_PASSWORD,
    assert_every_event_reached_the_consumer_once,
    observing,
    require_bed,
    running_farm,
    unmerged_wps,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DAG = {
    "WP01": [], "WP02": [], "WP03": [],
    "WP04": ["WP01", "WP02"], "WP05": ["WP02", "WP03"],
    "WP06": ["WP04"], "WP07": ["WP04", "WP05"],
}


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
