"""Roles × write endpoints, agents limited to their own work, and the actor taken from the token."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from tests.integration.api.conftest import ROLES, add_job, client_for, move

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED, DENIED = "allowed", 403

# endpoint → (method path, body, expected per role). "allowed" = the role passes and the call succeeds.
MATRIX = {
    "transition": ("/wps/WP01/transition", {"to": "blocked"},
                   {"human": ALLOWED, "agent": ALLOWED, "ci": ALLOWED, "admin": ALLOWED}),
    "transition to done": ("/wps/WP02/transition", {"to": "done"},
                           {"human": ALLOWED, "agent": DENIED, "ci": ALLOWED, "admin": ALLOWED}),
    "move to done": ("/wps/WP02/move", {"to": "done"},
                     {"human": ALLOWED, "agent": DENIED, "ci": ALLOWED, "admin": ALLOWED}),
    "implement": ("/implement", {"wps": ["WP03"], "agent": "command"},
                  {"human": ALLOWED, "agent": DENIED, "ci": ALLOWED, "admin": ALLOWED}),
    "review": ("/wps/WP02/review", {"apply": True},
               {"human": ALLOWED, "agent": DENIED, "ci": ALLOWED, "admin": ALLOWED}),
    "cancel job": ("/api/jobs/job_wp01_comma/cancel", {},
                   {"human": ALLOWED, "agent": ALLOWED, "ci": ALLOWED, "admin": ALLOWED}),
    "report on job": ("/api/jobs/job_wp01_comma/log", {"lines": ["tests pass"]},
                      {"human": ALLOWED, "agent": ALLOWED, "ci": DENIED, "admin": ALLOWED}),
    "create token": ("/api/tokens", {"username": "new-bot", "role": "ci"},
                     {"human": DENIED, "agent": DENIED, "ci": DENIED, "admin": ALLOWED}),
}


@pytest.fixture
def stage(feature, no_doorbell, monkeypatch):
    """WP01 planned with a running job of the `command` agent; WP02 for_review (no branch: done by
    hand, nothing to merge); WP03 planned and ready."""
    add_job(feature, "WP01")
    move(feature, "WP02", "doing", "for_review")
    monkeypatch.setattr("agileplus.review.services._review_checks", lambda wp, job, branch: ([], "", ""))
    return feature


def url_of(feature, path: str) -> str:
    return path if path.startswith("/api/") else f"/api/features/{feature.slug}{path}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", list(MATRIX))
def test_each_role_may_call_exactly_the_writes_its_role_allows(stage, role, endpoint):
    path, body, expected = MATRIX[endpoint]

    response = client_for(role).post(url_of(stage, path), body, format="json")

    if expected[role] == ALLOWED:
        assert 200 <= response.status_code < 300, response.json()
    else:
        assert response.status_code == 403, response.json()
        assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_may_read(stage, role):
    client = client_for(role)
    for path in ("/api/projects", "/api/features", f"/api/features/{stage.slug}", "/api/jobs", "/api/events",
                 "/api/jobs/job_wp01_comma/log", f"/api/features/{stage.slug}/audit"):
        assert client.get(path).status_code == 200, path


def test_an_agent_may_not_transition_a_wp_another_agent_works_on(feature):
    add_job(feature, "WP01", harness="codex")

    response = client_for("agent", agent="claude-code").post(
        f"/api/features/{feature.slug}/wps/WP01/transition", {"to": "doing"}, format="json")

    assert response.status_code == 403 and response.json()["error"]["field"] == "wp"
    assert feature.work_packages.get(code="WP01").state == "planned"


def test_an_agent_moves_its_own_wp_forward_but_never_to_done(feature):
    add_job(feature, "WP01", harness="claude-code")
    agent = client_for("agent", agent="claude-code")
    url = f"/api/features/{feature.slug}/wps/WP01/transition"

    assert agent.post(url, {"to": "doing"}, format="json").status_code == 200
    assert agent.post(url, {"to": "for_review"}, format="json").status_code == 200
    refused = agent.post(url, {"to": "done"}, format="json")

    assert refused.status_code == 403
    assert (refused.json()["error"]["code"], refused.json()["error"]["field"]) == ("permission_denied", "actor")
    assert feature.work_packages.get(code="WP01").state == "for_review"


def test_an_agent_may_not_cancel_or_report_on_another_agents_job(feature):
    add_job(feature, "WP01", harness="codex")
    agent = client_for("agent", agent="claude-code")

    cancel = agent.post("/api/jobs/job_wp01_codex/cancel", {}, format="json")
    report = agent.post("/api/jobs/job_wp01_codex/log", {"lines": ["hi"]}, format="json")

    assert (cancel.status_code, report.status_code) == (403, 403)
    assert DispatchJob.objects.get(pk="job_wp01_codex").cancel_requested is False


@pytest.mark.parametrize(("role", "actor"), [("human", "human:human-user"), ("ci", "ci:ci-user"),
                                             ("admin", "human:admin-user"), ("agent", "agent:command")])
def test_the_audit_actor_is_the_tokens_identity_even_when_the_body_names_another(feature, role, actor):
    add_job(feature, "WP01", harness="command")

    response = client_for(role).post(f"/api/features/{feature.slug}/wps/WP01/transition",
                                     {"to": "doing", "actor": "human:mallory"}, format="json")

    assert response.status_code == 200 and response.json()["actor"] == actor
    assert AuditEntry.objects.get(feature=feature, transition="WP01:planned->doing").actor == actor


def test_a_session_login_acts_as_the_person(feature, django_user_model):
    django_user_model.objects.create_user("erin", password="s3cret-pass")
    client = APIClient(enforce_csrf_checks=False)
    client.login(username="erin", password="s3cret-pass")

    response = client.post(f"/api/features/{feature.slug}/wps/WP01/transition", {"to": "doing"}, format="json")

    assert response.status_code == 200 and response.json()["actor"] == "human:erin"


def test_the_matrix_covers_every_write_endpoint_of_the_schema():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    writes = {endpoint_of(path) for path, ops in schema["paths"].items()
              for method in ops if method in ("post", "put", "patch", "delete")}
    covered = {endpoint_of(path) for path, _, _ in MATRIX.values()}

    assert writes - {"/api/auth/token"} == covered  # logging in is the one write anyone may call


def endpoint_of(path: str) -> str:
    """The matrix's and the schema's spellings of one endpoint, made comparable."""
    import re

    if not path.startswith("/api/"):
        path = "/api/features/{slug}" + path
    return re.sub(r"/WP\d+/|/job_[a-z0-9_]+/", lambda m: "/{wp}/" if "WP" in m.group() else "/{job_id}/", path)
