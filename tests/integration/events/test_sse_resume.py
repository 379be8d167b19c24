"""The SSE stream served by a real `agileplus web` (uvicorn): a client that disconnects and
reconnects with `Last-Event-ID` misses nothing and sees nothing twice."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from agileplus.api.tokens import issue_token
from agileplus.events.models import Event
from agileplus.features.services import transition_wp
from tests.factories import make_feature_with_wps
from tests.support.server import running_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def read_events(url: str, token: str, *, count: int, last_event_id: int | None = None,
                timeout: float = 20) -> list[tuple[int, str]]:
    """Open the stream, collect ``count`` events as (id, subject), then drop the connection."""
    headers = {"Authorization": f"Token {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    seen: list[tuple[int, str]] = []
    event_id = None
    with httpx.stream("GET", f"{url}/api/events/stream", headers=headers, timeout=timeout) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif line.startswith("data:") and event_id is not None:
                seen.append((event_id, json.loads(line[5:])["subject"]))
                event_id = None
                if len(seen) == count:
                    break
    return seen


@pytest.fixture
def token():
    return issue_token(User.objects.create_user("watcher"))


def drive(wps) -> None:
    for wp in wps:
        for state in ("doing", "for_review", "done"):
            transition_wp(wp, state, actor="human:alice")


def test_a_reconnecting_client_misses_nothing_and_sees_nothing_twice(token):
    _feature, wps = make_feature_with_wps(4, chain=False)
    with running_web() as url:
        first_batch = threading.Thread(target=drive, args=(wps[:2],))
        first_batch.start()
        first = read_events(url, token, count=3, last_event_id=0)
        first_batch.join()
        drive(wps[2:])  # happens while the client is away
        rest = read_events(url, token, count=Event.objects.count() - 3, last_event_id=first[-1][0])

    received = first + rest
    expected = list(Event.objects.order_by("id").values_list("id", "subject"))
    assert received == expected
    assert len({i for i, _ in received}) == len(received)


def test_a_bad_last_event_id_is_a_clear_400(token):
    with running_web() as url:
        response = httpx.get(f"{url}/api/events/stream", headers={"Authorization": f"Token {token}",
                                                                   "Last-Event-ID": "abc"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "Last-Event-ID"


def test_the_stream_refuses_an_anonymous_client():
    with running_web() as url:
        response = httpx.get(f"{url}/api/events/stream")
    assert response.status_code == 401


def test_an_event_made_once_the_client_is_connected_is_delivered_even_before_the_body_is_read(token):
    """"Only new events" is fixed when the stream answers (the client then shows itself live), not
    when its body is first read: an event made in between is new to the client, and it gets it."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncRequestFactory

    from agileplus.events.views import stream

    _feature, (wp,) = make_feature_with_wps(1, chain=False)
    request = AsyncRequestFactory().get("/api/events/stream", HTTP_AUTHORIZATION=f"Token {token}")
    request.user = User()  # anonymous session: the token authenticates

    async def first_event_after_connecting() -> str:
        response = await stream(request)  # the headers: the client sees itself connected here
        assert response.status_code == 200
        await sync_to_async(transition_wp)(wp, "doing", actor="human:alice")
        chunks = aiter(response.streaming_content)
        for _ in range(5):  # the retry hint, then the event (no heartbeat within a second)
            chunk = await asyncio.wait_for(anext(chunks), timeout=10)
            chunk = chunk.decode() if isinstance(chunk, bytes) else chunk
            if chunk.startswith("id:"):
                await chunks.aclose()
                return chunk
        raise AssertionError("no event in the first chunks of the stream")

    assert "state.changed" in async_to_sync(first_event_after_connecting)()
