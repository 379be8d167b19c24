"""The dashboard and admin login forms are rate-limited per address with the same policy (and
the same budget) as ``POST /api/auth/token``: wrong passwords cannot be tried without end."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from rest_framework.test import APIClient

from tests.integration.api.test_api_throttling import rates

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "right-horse-battery"


@pytest.fixture
def alice():
    return get_user_model().objects.create_superuser("alice", "alice@example.com", PASSWORD)


def _attempts(url: str, wrong: int) -> tuple[list[int], object]:
    client = Client()
    codes = [client.post(url, {"username": "alice", "password": f"wrong-{n}"}).status_code for n in range(wrong)]
    return codes, client.post(url, {"username": "alice", "password": PASSWORD})


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_past_the_auth_rate_even_the_right_password_gets_a_429(alice, url):
    with override_settings(REST_FRAMEWORK=rates(auth="5/min")):
        codes, right = _attempts(url, 5)
    assert codes == [200] * 5  # the form again, with its error
    assert right.status_code == 429 and int(right["Retry-After"]) > 0


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_within_the_auth_rate_the_right_password_logs_in(alice, url):
    with override_settings(REST_FRAMEWORK=rates(auth="5/min")):
        codes, right = _attempts(url, 3)
    assert right.status_code == 302


def test_the_forms_and_the_token_endpoint_share_one_budget_per_address(alice):
    with override_settings(REST_FRAMEWORK=rates(auth="4/min")):
        for _ in range(2):
            Client().post("/login/", {"username": "alice", "password": "wrong"})
            Client().post("/admin/login/", {"username": "alice", "password": "wrong"})
        api = APIClient().post("/api/auth/token", {"username": "alice", "password": PASSWORD}, format="json")
    assert api.status_code == 429


def test_showing_the_login_form_is_not_counted(alice):
    with override_settings(REST_FRAMEWORK=rates(auth="2/min")):
        shown = {Client().get("/login/").status_code for _ in range(5)}
        _codes, right = _attempts("/login/", 0)
    assert shown == {200} and right.status_code == 302
