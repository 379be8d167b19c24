"""The MCP server, driven by the `mcp` package's own client over stdio and streamable HTTP."""

from __future__ import annotations

import json
import sys

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from agileplus.api.services import create_api_token
from agileplus.dispatch.models import DispatchJob
from tests.support.farm import ROOT, import_target, make_target_repo
from tests.support.mcp import mcp_http_session
from tests.support.server import subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def payload(result) -> object:
    """A tool result's structured content (or its text, parsed)."""
    if getattr(result, "structured_content", None) is not None:
        content = result.structured_content
        return content.get("result", content) if isinstance(content, dict) else content
    return json.loads(result.content[0].text)


async def stdio_session(actor: str, calls):
    params = StdioServerParameters(command=sys.executable, args=["-m", "agileplus", "mcp", "--actor", actor],
                                   env=subprocess_env(), cwd=str(ROOT))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return await calls(session)


@pytest.fixture
def feature(tmp_path):
    return import_target(make_target_repo(tmp_path, wps={"WP01": [], "WP02": ["WP01"]}))


def test_an_mcp_client_lists_wps_and_dispatches_one_over_stdio(feature):
    async def calls(session):
        tools = {t.name for t in (await session.list_tools()).tools}
        wps = payload(await session.call_tool("list_wps", {"feature": "003"}))
        job = payload(await session.call_tool("dispatch", {"feature": "003", "wp": "WP01"}))
        return tools, wps, job

    tools, wps, job = anyio.run(stdio_session, "human:alice", calls)

    assert {"list_features", "feature_status", "list_wps", "wp_log", "dispatch", "transition",
            "verify_audit"} <= tools
    assert [w["code"] for w in wps["work_packages"]] == ["WP01", "WP02"]
    assert DispatchJob.objects.get(pk=job["id"]).requested_by == "human:alice"


def test_an_agent_caller_may_not_move_work_to_done(feature):
    async def calls(session):
        return await session.call_tool("transition", {"feature": "003", "wp": "WP01", "to": "done"})

    result = anyio.run(stdio_session, "agent:claude-code", calls)

    assert result.is_error
    assert "may not" in result.content[0].text
    assert feature.work_packages.get(code="WP01").state == "planned"


def test_a_blocked_wp_cannot_be_dispatched_and_the_error_names_the_blocker(feature):
    async def calls(session):
        return await session.call_tool("dispatch", {"feature": "003", "wp": "WP02"})

    result = anyio.run(stdio_session, "human:alice", calls)

    assert result.is_error and "WP01" in result.content[0].text


def test_the_http_transport_takes_the_actor_from_the_token(feature):
    token = create_api_token("ci-bot", "ci")

    async def calls(session):
        return payload(await session.call_tool("dispatch", {"feature": "003", "wp": "WP01"}))

    job = mcp_http_session(token, calls)

    assert DispatchJob.objects.get(pk=job["id"]).requested_by == "ci:ci-bot"
