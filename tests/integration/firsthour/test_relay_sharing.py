"""Two farms on one NATS (a stream and a subject prefix each), and a second relay that says
another relay is running instead of hanging."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from agileplus.core.errors import DomainError
from agileplus.events.relay import relay_singleton, run_relay
from agileplus.features.services import transition_wp
from tests.factories import make_feature_with_wps
from tests.support.nats_server import NatsServer, stream_subjects
from tests.support.server import ROOT, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def nats_url(tmp_path):
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    yield server.url
    server.stop()


def some_events() -> None:
    _feature, (wp,) = make_feature_with_wps(1)
    transition_wp(wp, "doing", actor="agent:command")


def test_two_farms_publish_into_their_own_streams_under_their_own_prefixes(nats_url):
    some_events()
    assert asyncio.run(run_relay(nats_url, stream="FARM_A", prefix="farma", once=True)) > 0
    some_events()
    assert asyncio.run(run_relay(nats_url, stream="FARM_B", prefix="farmb.agileplus", once=True)) > 0

    a, b = asyncio.run(stream_subjects(nats_url, "FARM_A")), asyncio.run(stream_subjects(nats_url, "FARM_B"))
    assert a and all(s.startswith("farma.feature.") for s in a)
    assert b and all(s.startswith("farmb.agileplus.feature.") for s in b)


def test_a_subject_prefix_with_a_wildcard_is_refused_naming_the_setting(nats_url):
    with pytest.raises(DomainError) as refused:
        asyncio.run(run_relay(nats_url, prefix="farm.>", once=True))
    assert refused.value.field == "AGILEPLUS_NATS_SUBJECT_PREFIX"


def relay_once(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "agileplus", "relay", "--once", *args], cwd=ROOT,
                          env=subprocess_env(NATS_URL="nats://127.0.0.1:9"), capture_output=True, text=True,
                          timeout=120)
    return done, time.monotonic() - started


def test_relay_once_while_another_relay_runs_says_so_and_exits():
    with relay_singleton(wait=False) as held:
        assert held
        done, _took = relay_once()

    assert done.returncode != 0
    assert "another relay is running" in done.stderr and "Traceback" not in done.stderr


def test_relay_once_with_wait_says_it_waits_and_gives_up_after_the_bound():
    with relay_singleton(wait=False) as held:
        assert held
        done, took = relay_once("--wait", "2")

    assert "another relay is running: waiting up to 2s for it to stop" in done.stderr
    assert done.returncode != 0 and took < 60
