"""`agileplus beat` sends the webhooks: a WP blocked in the farm's database reaches a receiver on
loopback through a real beat process (its deliverer thread), with no worker running."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agileplus.features.services import transition_wp
from agileplus.operations import webhooks
from tests.factories import make_feature_with_wps
from tests.support.processes import stop_group
from tests.support.server import ROOT, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_running_beat_delivers_a_blocked_wp(loopback_webhooks, receiver, tmp_path):
    webhooks.add_endpoint("ops", receiver.url, ["wp.blocked"])
    log = (tmp_path / "beat.log").open("w")
    beat = subprocess.Popen([sys.executable, "-m", "agileplus", "beat"], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=subprocess_env(AGILEPLUS_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
                                               AGILEPLUS_WEBHOOK_POLL_SECONDS="0.2",
                                               AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                                               AGILEPLUS_DATA_DIR=str(tmp_path / "beat-data")))
    try:
        _feature, (wp,) = make_feature_with_wps(1)
        transition_wp(wp, "blocked", actor="system:agileplus", event_extra={"reason": "tests_failed"})
        (got,) = receiver.wait_for(1, timeout=30)
    finally:
        stop_group(beat)
        log.close()
    assert json.loads(got.body)["subject"] == "wp.blocked"
