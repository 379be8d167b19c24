"""One authorization path: REST, MCP over HTTP and stdio, and SSE refuse the same things, and an
agent acts only on the WP of the job it runs, with a token the worker mints for that job and
revokes when it ends."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from agileplus.api.models import ApiRole
from agileplus.api.services import create_api_token, mint_job_token, revoke_job_token
from tests.integration.api.conftest import add_job, client_for
from tests.support.mcp import mcp_http_session

pytestmark = pytest.mark.django_db(transaction=True)


def _transition(client: APIClient, feature, code: str, to: str = "doing"):
    return client.post(f"/api/features/{feature.slug}/wps/{code}/transition", {"to": to}, format="json")


def _token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_job_token_moves_the_wp_of_its_job(feature):
    job = add_job(feature, "WP01", harness="claude-code")
    response = _transition(_token_client(mint_job_token(job)), feature, "WP01")
    assert response.status_code == 200 and response.json()["actor"] == "agent:claude-code"


def test_a_job_token_may_not_move_another_wp_its_harness_is_running(feature):
    mine = add_job(feature, "WP01", harness="claude-code")
    add_job(feature, "WP02", harness="claude-code")
    response = _transition(_token_client(mint_job_token(mine)), feature, "WP02")
    assert response.status_code == 403 and response.json()["error"]["field"] == "wp"
    assert feature.work_packages.get(code="WP02").state == "planned"


def test_an_agent_token_may_not_move_a_wp_whose_job_of_its_harness_has_finished(feature):
    add_job(feature, "WP01", harness="claude-code", state="succeeded")
    response = _transition(client_for("agent", agent="claude-code"), feature, "WP01")
    assert response.status_code == 403


def test_a_job_token_may_not_cancel_another_job_of_its_harness(feature):
    mine = add_job(feature, "WP01", harness="claude-code")
    other = add_job(feature, "WP02", harness="claude-code")
    response = _token_client(mint_job_token(mine)).post(f"/api/jobs/{other.id}/cancel", {}, format="json")
    assert response.status_code == 403


def test_a_revoked_job_token_is_refused(feature):
    job = add_job(feature, "WP01", harness="claude-code")
    key = mint_job_token(job)
    revoke_job_token(job.id, job.attempt)
    assert _token_client(key).get("/api/features").status_code == 401


def test_an_expired_job_token_is_refused_by_rest_and_sse(feature):
    job = add_job(feature, "WP01", harness="claude-code")
    key = mint_job_token(job)
    ApiRole.objects.filter(job_id=job.id).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert _token_client(key).get("/api/features").status_code == 401
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get(f"/api/events/jobs/{job.id}/log").status_code == 401


@pytest.mark.slow
def test_mcp_over_http_refuses_an_agent_moving_another_harness_wp_as_rest_does(feature):
    add_job(feature, "WP01", harness="codex")
    token = create_api_token("claude-agent", "agent", "claude-code")

    async def calls(session):
        return await session.call_tool("transition", {"feature": feature.slug, "wp": "WP01", "to": "blocked"})

    result = mcp_http_session(token, calls)

    assert result.is_error and "may not move WP01" in result.content[0].text
    assert feature.work_packages.get(code="WP01").state == "planned"
    assert _transition(_token_client(token), feature, "WP01", "blocked").status_code == 403


def test_revoking_a_fenced_attempts_token_leaves_the_next_attempts_token_working(feature):
    job = add_job(feature, "WP01", harness="claude-code")
    job.attempt = 2
    job.save(update_fields=["attempt"])
    current = mint_job_token(job)
    revoke_job_token(job.id, 1)  # the worker that lost attempt 1 cleans up after itself
    assert _token_client(current).get("/api/features").status_code == 200
