"""Request limits hold before authentication: an oversized body is a 413 and deeply nested JSON a
400, both in the API's one error shape, for anonymous callers too; the log stream of a job that
does not exist is a 404."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.integration.api.conftest import add_job, client_for
from tests.integration.api.test_api_errors import error_of

pytestmark = pytest.mark.django_db(transaction=True)

TEN_MB = b'{"username": "' + b"a" * 10_000_000 + b'", "password": "x"}'
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


def test_a_10_mb_body_to_the_login_endpoint_is_a_413_without_credentials():
    response = APIClient().post("/api/auth/token", data=TEN_MB, content_type="application/json")
    assert error_of(response, 413)["code"] == "too_large"


def test_a_10_mb_body_from_an_authenticated_caller_is_a_413(feature):
    response = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition", data=TEN_MB,
                                        content_type="application/json")
    assert error_of(response, 413)["field"] == "body"


def test_json_nested_100000_deep_is_a_400_not_a_recursion_error():
    response = APIClient().post("/api/auth/token", data=DEEP_JSON, content_type="application/json")
    error = error_of(response, 400)
    assert error["code"] == "too_deep" and "64" in error["message"]


def test_brackets_inside_json_strings_do_not_count_as_depth():
    body = b'{"username": "bob", "password": "' + b"[{" * 100 + b'"}'
    response = APIClient().post("/api/auth/token", data=body, content_type="application/json")
    assert error_of(response, 401)["code"] == "authentication_failed"


def test_a_body_under_the_limits_reaches_the_view(feature):
    response = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition",
                                        data={"to": "doing"}, format="json")
    assert response.status_code == 200, response.content


def test_the_log_stream_of_a_job_that_does_not_exist_is_a_404():
    client = Client(HTTP_AUTHORIZATION=f"Token {_token()}")
    response = client.get("/api/events/jobs/job_does_not_exist/log")
    assert error_of(response, 404)["field"] == "job_id"


def test_the_log_stream_of_a_job_that_exists_is_a_stream(feature):
    job = add_job(feature, "WP01")
    client = Client(HTTP_AUTHORIZATION=f"Token {_token()}")
    response = client.get(f"/api/events/jobs/{job.id}/log")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    response.close()


def _token() -> str:
    from agileplus.api.services import create_api_token

    return create_api_token("reader", "human")
