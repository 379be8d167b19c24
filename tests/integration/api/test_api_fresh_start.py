"""A fresh start through the REST API (`POST /api/features/{slug}/implement` with ``fresh``), the
remote CLI and the MCP `dispatch` tool: who may do it (the `implement` row of agileplus.api.roles),
what it answers, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from agileplus.api.services import create_api_token
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.features.services import transition_wp
from tests.integration.api.conftest import ROLES, client_for
from tests.support.farm import ROOT, import_target, make_target_repo
from tests.support.server import running_web, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True)]

BRANCH = "feat/003-auth-system-WP01"
MAY_START_OVER = {"human": True, "agent": False, "ci": True, "admin": True}


@pytest.fixture
def blocked(tmp_path, no_doorbell):
    """WP01 blocked, with earlier work pushed on its branch."""
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []}, behaviour="commit:1")
    feature = import_target(repo)
    old_head = repo.commit_on_branch(BRANCH, "secrets/token.txt", "feat(WP01): add token")
    transition_wp(feature.work_packages.get(code="WP01"), "blocked", actor="system:governance")
    return repo, feature, old_head


def start_over(client, body: dict | None = None):
    return client.post("/api/features/003-auth-system/implement", body or {"wp": "WP01", "fresh": True},
                       format="json")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_start_a_wp_over_exactly_as_the_implement_row_allows(blocked, role):
    repo, feature, old_head = blocked

    response = start_over(client_for(role))

    if MAY_START_OVER[role]:
        assert response.status_code == 202, response.json()
        body = response.json()
        assert body["fresh_start"]["salvaged_sha"] == old_head
        assert repo.head(body["fresh_start"]["salvage_branch"]) == old_head
        assert body["jobs"][0]["wp"] == "WP01" and body["jobs"][0]["state"] == "queued"
        assert DispatchJob.objects.get(pk=body["jobs"][0]["id"]).result["fresh_start"] == body["fresh_start"]
    else:
        assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
        assert repo.head(BRANCH) == old_head and repo.branches("salvage/") == {}


def test_the_audit_entry_names_the_token_holder(blocked):
    _repo, feature, _old_head = blocked

    start_over(client_for("ci", username="nightly"))

    assert AuditEntry.objects.get(feature=feature, transition="WP01:fresh_start").actor == "ci:nightly"


def test_a_fresh_start_while_an_agent_job_is_active_is_a_409_naming_the_job(blocked):
    repo, feature, old_head = blocked
    client = client_for("human")
    first = start_over(client).json()["jobs"][0]["id"]

    response = start_over(client)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "illegal_transition" and error["field"] == "wp"
    assert first in error["message"] and f"agileplus jobs cancel {first}" in error["fix"]
    assert len(repo.branches("salvage/")) == 1


@pytest.mark.parametrize("body", [{"wps": ["WP01", "WP02"], "fresh": True}, {"all": True, "fresh": True}],
                         ids=["two WPs", "all"])
def test_a_fresh_start_of_more_than_one_wp_is_a_400_naming_the_field(blocked, body):
    response = start_over(client_for("human"), body)

    assert response.status_code == 400
    assert "fresh" in json.dumps(response.json()["error"])


def test_the_openapi_schema_describes_fresh_and_what_it_answers():
    schema = client_for("human").get("/api/schema/?format=json").json()

    body = schema["components"]["schemas"]["ImplementIn"]["properties"]
    answer = schema["components"]["schemas"]["ImplementOut"]["properties"]
    assert body["fresh"]["type"] == "boolean"
    assert "fresh_start" in answer


def remote(url: str, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "AGILEPLUS_URL": url, "AGILEPLUS_TOKEN": token, "HOME": "/tmp"}
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.slow
def test_the_remote_cli_starts_a_wp_over_and_says_where_the_old_work_is(blocked):
    repo, _feature, old_head = blocked
    with running_web() as url:
        done = remote(url, create_api_token("carol", "human"), "implement", "003", "--wp", "WP01", "--fresh")

    assert done.returncode == 0, done.stderr
    [salvage] = repo.branches("salvage/")
    assert f"Old work: {BRANCH} ({old_head[:7]}) is kept on the origin as {salvage}" in done.stdout
    assert f"New branch: {BRANCH}-fresh1 from main" in done.stdout


def mcp_dispatch(actor: str, arguments: dict):
    async def session():
        params = StdioServerParameters(command=sys.executable, args=["-m", "agileplus", "mcp", "--actor", actor],
                                       env=subprocess_env(), cwd=str(ROOT))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            return await client.call_tool("dispatch", arguments)
    return anyio.run(session)


@pytest.mark.slow
def test_the_mcp_dispatch_tool_starts_a_wp_over_with_fresh(blocked):
    repo, _feature, old_head = blocked

    result = mcp_dispatch("human:alice", {"feature": "003", "wp": "WP01", "fresh": True})

    assert not result.is_error, result.content
    answer = json.loads(result.content[0].text)
    assert answer["fresh_start"]["salvaged_sha"] == old_head
    assert repo.head(answer["fresh_start"]["salvage_branch"]) == old_head
    assert DispatchJob.objects.get(pk=answer["id"]).requested_by == "human:alice"


@pytest.mark.slow
def test_an_agent_may_not_start_a_wp_over_through_mcp(blocked):
    repo, _feature, old_head = blocked

    result = mcp_dispatch("agent:claude-code", {"feature": "003", "wp": "WP01", "fresh": True})

    assert result.is_error and "may not dispatch agents" in result.content[0].text
    assert repo.head(BRANCH) == old_head and repo.branches("salvage/") == {}
