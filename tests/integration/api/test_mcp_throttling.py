"""MCP over HTTP (`agileplus mcp --http`, a real process) is held to the REST API's throttles, by
the same definitions (agileplus.api.throttles) and rates (AGILEPLUS_API_AUTH_RATE,
AGILEPLUS_API_WRITE_RATE): bad tokens per address turn from 401 to 429 with Retry-After, as on
REST; each write tool call spends the user's write budget."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from agileplus.api.services import create_api_token
from agileplus.features.models import WorkPackage
from tests.support.farm import import_target, make_target_repo
from tests.support.server import ROOT, free_port, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BAD_TOKEN = "Token " + "f" * 40
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@contextmanager
def mcp_http(**env: str) -> Iterator[str]:
    """`agileplus mcp --http` on a free port with ``env``; yields its URL once it answers."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "agileplus", "mcp", "--http", "--port", str(port)], cwd=ROOT,
                              env=subprocess_env(**env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.post(url, content=b"{}", timeout=2).status_code == 401  # up (no token: not counted)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read().decode()
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def call(url: str, token: str, tool: str, arguments: dict, *, forwarded_for: str = "") -> httpx.Response:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    headers = {**MCP_HEADERS, "Authorization": token, **({"X-Forwarded-For": forwarded_for} if forwarded_for else {})}
    return httpx.post(url, json=message, headers=headers, timeout=30)


def rest_codes_for_bad_tokens(n: int, rate: str) -> list[int]:
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION=BAD_TOKEN)
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": rate}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        return [guesser.get("/api/features", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}").status_code for i in range(n)]


def test_100_bad_tokens_over_mcp_http_are_throttled_like_rest_whatever_x_forwarded_for_says():
    with mcp_http(AGILEPLUS_API_AUTH_RATE="40/min") as url:
        answers = [call(url, BAD_TOKEN, "list_features", {}, forwarded_for=f"10.0.0.{i}") for i in range(100)]

    codes = [a.status_code for a in answers]
    assert codes == [401] * 40 + [429] * 60
    assert codes == rest_codes_for_bad_tokens(100, "40/min")
    throttled = answers[-1]
    assert int(throttled.headers["Retry-After"]) > 0 and throttled.json()["error"]["code"] == "throttled"


def test_write_tool_calls_over_mcp_http_past_the_write_rate_are_a_429_with_retry_after(tmp_path):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}))
    token = f"Token {create_api_token('hana', 'human')}"
    moves = [{"feature": "003", "wp": "WP01", "to": to} for to in ("blocked", "planned", "blocked", "planned")]
    with mcp_http(AGILEPLUS_API_WRITE_RATE="3/min") as url:
        answers = [call(url, token, "transition", move) for move in moves]
        read = call(url, token, "list_features", {})

    assert [a.status_code for a in answers] == [200, 200, 200, 429] and read.status_code == 200
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert WorkPackage.objects.get(feature=feature, code="WP01").state == "blocked"  # the fourth never ran
