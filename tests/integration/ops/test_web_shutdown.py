"""`agileplus web` stops on SIGTERM within its graceful timeout, even with an event stream open
(a stream never ends by itself: without the timeout uvicorn waited for it forever)."""

from __future__ import annotations

import http.client
import os
import signal
import time
from urllib.parse import urlparse

import pytest

from agileplus.api.services import create_api_token
from tests.support.server import running_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]

GRACEFUL = 2


def test_sigterm_stops_the_server_within_its_graceful_timeout_with_a_stream_open():
    token = create_api_token("watcher", "human")
    started: list = []
    with running_web(started=started, AGILEPLUS_WEB_GRACEFUL_SECONDS=str(GRACEFUL)) as url:
        proc = started[0]
        address = urlparse(url)
        stream = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        stream.request("GET", "/api/events/stream", headers={"Authorization": f"Token {token}"})
        response = stream.getresponse()
        assert response.status == 200
        response.read1(64)  # the stream is open and has started answering

        os.killpg(proc.pid, signal.SIGTERM)
        sent = time.monotonic()
        proc.wait(timeout=60)
        stopped_after = time.monotonic() - sent
        stream.close()

    # the graceful timeout plus a wide margin for a loaded 2-core machine; it never ended before
    assert stopped_after < GRACEFUL + 15, stopped_after
