"""The outbox relay publishes every event to JetStream exactly once and in order,
through NATS outages and relay crashes."""

from __future__ import annotations

import asyncio

import pytest

from agileplus.events.models import Event
from agileplus.events.relay import run_relay
from agileplus.features.services import transition_wp
from tests.factories import make_feature_with_wps
from tests.support.jetstream import drain_stream
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = "AGILEPLUS"


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    yield server
    server.stop()


def lifecycle() -> str:
    feature, (wp,) = make_feature_with_wps(1)
    for target, actor in (("doing", "agent:command"), ("for_review", "agent:command"), ("done", "ci:automation")):
        transition_wp(wp, target, actor=actor)
    return feature.slug


def relay_once(url: str) -> int:
    return asyncio.run(run_relay(url, stream=STREAM, once=True))


async def _consume(url: str) -> list[dict]:
    got = await drain_stream(url, STREAM, durable="test-consumer")
    return [{"msg_id": m["msg_id"], **m["body"]} for m in got]


def consume(url: str) -> list[dict]:
    return asyncio.run(_consume(url))


def test_a_durable_consumer_receives_every_event_of_a_lifecycle_once_and_in_order(nats_server):
    lifecycle()
    assert relay_once(nats_server.url) == Event.objects.count()
    got = consume(nats_server.url)
    expected = list(Event.objects.order_by("pk").values_list("pk", "subject"))
    assert [(m["id"], m["subject"]) for m in got] == expected
    assert not Event.objects.filter(published_at__isnull=True).exists()


def test_events_wait_while_nats_is_down_and_are_published_once_after_restart(nats_server):
    lifecycle()
    relay_once(nats_server.url)
    nats_server.stop()
    lifecycle()  # written while NATS is down
    with pytest.raises(Exception):  # noqa: B017 - any connection error: NATS is down
        relay_once(nats_server.url)
    waiting = Event.objects.filter(published_at__isnull=True).count()
    assert waiting > 0
    nats_server.start()
    assert relay_once(nats_server.url) == waiting
    got = consume(nats_server.url)
    assert [m["id"] for m in got] == list(Event.objects.order_by("pk").values_list("pk", flat=True))


def test_a_relay_that_died_between_ack_and_mark_causes_no_duplicate(nats_server):
    lifecycle()
    relay_once(nats_server.url)
    # The crash window: JetStream acknowledged, the row was never marked published.
    Event.objects.update(published_at=None)
    relay_once(nats_server.url)
    got = consume(nats_server.url)
    ids = [m["msg_id"] for m in got]
    assert len(ids) == len(set(ids)) == Event.objects.count()
