"""The REST API: roles × write endpoints, the actor from the token, one error shape, bounded
queries, and concurrent conflicting transitions over real HTTP."""

from __future__ import annotations

import threading

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from agileplus.api.services import create_api_token
from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.features.services import transition_wp
from tests.factories import make_feature_with_wps
from tests.support.server import running_web

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ("human", "agent", "ci", "admin")


def client_for(role: str, *, agent: str = "command") -> APIClient:
    client = APIClient()
    key = create_api_token(f"{role}-user", role, agent=agent if role == "agent" else "")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def feature():
    feature, _wps = make_feature_with_wps(3, chain=False)
    return feature


def job_for(feature, code: str, harness: str = "command") -> DispatchJob:
    wp = feature.work_packages.get(code=code)
    return DispatchJob.objects.create(id=f"job_{code.lower()}_{harness[:5]}", feature=feature, wp=wp,
                                      harness=harness, state="running")


# --- permission matrix -------------------------------------------------------------------------
# (endpoint, body, expected status per role). 403 = refused by role; other codes = allowed through.
def write_endpoints(feature):
    slug = feature.slug
    job_for(feature, "WP03")
    return {
        "transition to doing": (f"/api/features/{slug}/wps/WP01/transition", {"to": "doing"},
                                {"human": 200, "agent": 403, "ci": 200, "admin": 200}),
        "move to done": (f"/api/features/{slug}/wps/WP02/move", {"to": "done"},
                         {"human": 409, "agent": 403, "ci": 409, "admin": 409}),
        "implement": (f"/api/features/{slug}/implement", {"wp": "WP02", "agent": "command"},
                      {"human": 202, "agent": 403, "ci": 202, "admin": 202}),
        "review": (f"/api/features/{slug}/wps/WP02/review", {},
                   {"human": "allowed", "agent": 403, "ci": "allowed", "admin": "allowed"}),
        "cancel own job": ("/api/jobs/job_wp03_comma/cancel", {},
                           {"human": 200, "agent": 200, "ci": 200, "admin": 200}),
        "report on own job": ("/api/jobs/job_wp03_comma/log", {"lines": ["hello"]},
                              {"human": 201, "agent": 201, "ci": 403, "admin": 201}),
        "create token": ("/api/tokens", {"username": "bot", "role": "ci"},
                         {"human": 403, "agent": 403, "ci": 403, "admin": 201}),
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ["transition to doing", "move to done", "implement", "review",
                                      "cancel own job", "report on own job", "create token"])
def test_permission_matrix(feature, role, endpoint, monkeypatch):
    monkeypatch.setattr("agileplus.dispatch.services.send_doorbell", lambda job: None)
    monkeypatch.setattr("agileplus.review.requests.send_request", lambda request_id: None)
    url, body, expected = write_endpoints(feature)[endpoint]

    response = client_for(role).post(url, body, format="json")

    if expected[role] == "allowed":
        assert response.status_code != 403, response.json()
    else:
        assert response.status_code == expected[role], response.json()
    if response.status_code == 403:
        assert response.json()["error"]["code"] == "permission_denied"


def test_an_agent_may_not_move_work_it_does_not_run(feature):
    job_for(feature, "WP01", harness="codex")
    response = client_for("agent", agent="claude-code").post(
        f"/api/features/{feature.slug}/wps/WP01/transition", {"to": "doing"}, format="json")
    assert response.status_code == 403


def test_the_actor_comes_from_the_token_not_the_body(feature):
    client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition",
                             {"to": "doing", "actor": "human:mallory"}, format="json")
    entry = AuditEntry.objects.get(feature=feature, transition="WP01:planned->doing")
    assert entry.actor == "human:human-user"


# --- errors ----------------------------------------------------------------------------------
def test_an_illegal_transition_is_a_409_naming_the_states(feature):
    response = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition", {"to": "done"},
                                        format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "illegal_transition"
    assert "planned" in response.json()["error"]["message"]


def test_a_stale_expected_state_is_a_409(feature):
    response = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition",
                                        {"to": "doing", "expected_state": "blocked"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "stale_state"


def test_a_bad_field_is_a_400_naming_it(feature):
    response = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition", {"to": "flying"},
                                        format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "to"


def test_an_unknown_feature_is_a_404_in_the_error_shape():
    response = client_for("human").get("/api/features/999-nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_no_token_is_a_401():
    response = APIClient().get("/api/features")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_a_bad_token_is_a_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token nope")
    assert client.get("/api/features").json()["error"]["code"] == "authentication_failed"


def test_writes_are_rate_limited(feature, settings):
    from django.core.cache import cache

    cache.clear()
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "write": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    from rest_framework.throttling import SimpleRateThrottle

    SimpleRateThrottle.THROTTLE_RATES = rates
    try:
        human = client_for("human")
        codes = [human.post(f"/api/features/{feature.slug}/wps/WP01/transition", {"to": "blocked"},
                            format="json").status_code for _ in range(5)]
    finally:
        SimpleRateThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        cache.clear()
    assert codes[-1] == 429


# --- query counts ------------------------------------------------------------------------------
READS = ["/api/features", "/api/features/{slug}", "/api/features/{slug}/wps", "/api/features/{slug}/wps/WP01",
         "/api/features/{slug}/audit", "/api/jobs", "/api/events", "/api/features/{slug}/costs", "/api/workers"]


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("path", READS)
def test_a_read_costs_the_same_queries_for_5_or_50_rows(path):
    client = client_for("human")
    small, _ = make_feature_with_wps(5, number=101)
    large, _ = make_feature_with_wps(50, number=102)
    for f in (small, large):
        for wp in f.work_packages.all():
            DispatchJob.objects.create(id=f"job_{f.number}_{wp.code}", feature=f, wp=wp, harness="command")
            transition_wp(wp, "blocked", actor="human:alice")
    queries_for(client, path.format(slug=small.slug))  # warm caches (content types, token)

    assert queries_for(client, path.format(slug=small.slug)) == queries_for(client, path.format(slug=large.slug))


# --- concurrency over HTTP -------------------------------------------------------------------
def test_concurrent_conflicting_transitions_one_wins_the_rest_409(feature):
    key = create_api_token("racer", "human")
    url_path = f"/api/features/{feature.slug}/wps/WP01/transition"
    with running_web() as url:
        barrier, codes = threading.Barrier(8), []

        def racer():
            with httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=30) as http:
                barrier.wait()
                codes.append(http.post(url_path, json={"to": "doing", "expected_state": "planned"}).status_code)

        threads = [threading.Thread(target=racer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert sorted(codes) == [200] + [409] * 7
    assert verify_chain(feature).ok
    assert AuditEntry.objects.filter(feature=feature, transition="WP01:planned->doing").count() == 1
