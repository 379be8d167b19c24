"""One error shape everywhere — {"error": {"code", "message", "field"?, "fix"?}} — and no 500 for any input."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.factories import make_feature_with_wps
from tests.integration.api.conftest import add_job, client_for, move

pytestmark = pytest.mark.django_db(transaction=True)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "field", "fix", "details"}
    return body["error"]


def test_a_field_that_fails_validation_is_a_400_naming_the_field(feature):
    error = error_of(client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition",
                                              {"to": "flying"}, format="json"), 400)
    assert error["code"] == "invalid" and error["field"] == "to"


def test_a_missing_field_is_a_400_naming_it(feature):
    error = error_of(client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition", {},
                                              format="json"), 400)
    assert error["field"] == "to"


def test_a_body_that_is_not_json_is_a_400(feature):
    response = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition", "{not json",
                                        content_type="application/json")
    assert error_of(response, 400)["code"] == "parse_error"


def test_no_token_is_a_401_saying_how_to_authenticate():
    error = error_of(APIClient().get("/api/features"), 401)
    assert error["code"] == "not_authenticated" and "Token" in error["fix"]


def test_an_unknown_token_is_a_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert error_of(client.get("/api/features"), 401)["code"] == "authentication_failed"


def test_a_malformed_token_is_a_401_not_a_database_error():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token abc\x00def")
    assert error_of(client.get("/api/features"), 401)["code"] == "authentication_failed"


def test_a_role_that_may_not_write_gets_a_403_naming_the_roles_that_may(feature):
    error = error_of(client_for("ci").post("/api/tokens", {"username": "x", "role": "human"}, format="json"), 403)
    assert error["code"] == "permission_denied" and "admin" in error["fix"]


def test_an_unknown_feature_is_a_404():
    error = error_of(client_for("human").get("/api/features/999-nothing"), 404)
    assert error["code"] == "not_found" and error["field"] == "feature"


def test_an_unknown_work_package_is_a_404_listing_the_known_ones(feature):
    error = error_of(client_for("human").get(f"/api/features/{feature.slug}/wps/WP09"), 404)
    assert error["field"] == "wp" and "WP01" in error["fix"]


def test_an_unknown_job_is_a_404():
    assert error_of(client_for("human").get("/api/jobs/job_nope"), 404)["field"] == "job"


def test_an_unknown_endpoint_under_api_is_a_404_in_the_same_shape():
    assert error_of(client_for("human").get("/api/nothing/here"), 404)["code"] == "not_found"


def test_a_trailing_slash_is_a_404_that_says_to_drop_it():
    error = error_of(client_for("human").get("/api/features/"), 404)
    assert error["fix"] == "drop the trailing slash: /api/features"


def test_the_docs_without_their_slash_redirect():
    response = APIClient().get("/api/docs")
    assert response.status_code == 301 and response["Location"] == "/api/docs/"


def test_an_illegal_transition_is_a_409_naming_the_states_and_the_way_out(feature):
    error = error_of(client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition",
                                              {"to": "done"}, format="json"), 409)
    assert error["code"] == "illegal_transition" and error["field"] == "to"
    assert "planned" in error["message"] and "doing" in error["fix"]


def test_a_wp_blocked_by_a_dependency_is_a_409_listing_the_blockers():
    feature, _ = make_feature_with_wps(2, chain=True)
    error = error_of(client_for("human").post(f"/api/features/{feature.slug}/wps/WP02/transition",
                                              {"to": "doing"}, format="json"), 409)
    assert error["code"] == "blocked_by_dependency" and error["details"] == {"blocked_by": ["WP01"]}


def test_a_stale_expected_state_is_a_409_naming_that_field(feature):
    move(feature, "WP01", "doing")
    error = error_of(client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition",
                                              {"to": "for_review", "expected_state": "planned"}, format="json"), 409)
    assert error["code"] == "stale_state" and error["field"] == "expected_state"
    assert feature.work_packages.get(code="WP01").state == "doing"


def test_cancelling_a_finished_job_is_a_409(feature):
    add_job(feature, "WP01", state="succeeded")
    assert error_of(client_for("human").post("/api/jobs/job_wp01_comma/cancel", {}, format="json"), 409)[
        "code"] == "illegal_transition"


def test_a_wrong_method_is_a_405_in_the_same_shape(feature):
    assert error_of(client_for("human").delete(f"/api/features/{feature.slug}"), 405)["code"] == \
        "method_not_allowed"


# --- junk never reaches a 500 ------------------------------------------------------------------
JUNK_TEXT = st.text(max_size=40)  # includes NUL, surrogates are excluded by hypothesis' default alphabet
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | JUNK_TEXT,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(JUNK_TEXT, inner, max_size=3),
                           max_leaves=8)
FIELDS = ["to", "expected_state", "note", "wps", "wp", "all", "agent", "timeout", "retries", "apply", "lines",
          "username", "role", "password"]
BODIES = st.one_of(JSON_VALUES, st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=5))
WRITES = ["/wps/WP01/transition", "/wps/WP01/move", "/wps/WP01/review", "/implement", "/api/jobs/job_wp01_comma/log",
          "/api/jobs/job_wp01_comma/cancel", "/api/tokens", "/api/auth/token"]


@pytest.fixture
def junk_target(feature, no_doorbell, monkeypatch):
    add_job(feature, "WP01")
    monkeypatch.setattr("agileplus.review.services._review_checks", lambda wp, job, branch: ([], "", ""))
    return feature, client_for("admin")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(WRITES), body=BODIES)
def test_no_request_body_makes_a_write_endpoint_fail_with_a_500(junk_target, path, body):
    feature, client = junk_target
    url = path if path.startswith("/api/") else f"/api/features/{feature.slug}{path}"

    response = client.post(url, body, format="json")

    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}


PARAMS = st.dictionaries(st.sampled_from(["after", "limit", "cursor", "feature", "status", "state", "harness",
                                          "subject", "by"]), JUNK_TEXT, max_size=4)
READS = ["/api/jobs", "/api/events", "/api/features/{slug}/audit", "/api/jobs/job_wp01_comma/log",
         "/api/features/{slug}/costs", "/api/features", "/api/features/{junk}", "/api/jobs/{junk}",
         "/api/features/{slug}/wps/{junk}"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(READS), params=PARAMS, junk=JUNK_TEXT)
def test_no_query_string_or_path_makes_a_read_fail_with_a_500(junk_target, path, params, junk):
    feature, client = junk_target
    url = path.format(slug=feature.slug, junk=quote(junk, safe=""))

    response = client.get(url, params)

    assert response.status_code < 500, response.content[:500]
    assert response.status_code in (200, 301, 400, 404), response.content[:500]


def test_a_made_up_jobs_cursor_is_a_400_naming_cursor():
    for cursor in ("bm9wZQ", "!!!", "MjAyNi0wMS0wMXxqb2I"):  # "nope", junk, "2026-01-01|job" (no timezone)
        assert error_of(client_for("human").get("/api/jobs", {"cursor": cursor}), 400)["field"] == "cursor"


def test_an_out_of_range_number_is_a_400_not_an_overflow():
    assert error_of(client_for("human").get("/api/events", {"after": str(2**80)}), 400)["field"] == "after"
