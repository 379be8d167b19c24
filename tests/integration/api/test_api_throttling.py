"""Writes are rate-limited per user; logins and bad tokens per address. Rates come from settings."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from tests.integration.api.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def rates(**scopes: str) -> dict:
    return {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                                                  **scopes}}


def test_writes_past_the_write_rate_are_a_429_with_retry_after(feature):
    human = client_for("human")
    url = f"/api/features/{feature.slug}/wps/WP01/transition"
    with override_settings(REST_FRAMEWORK=rates(write="3/min")):
        codes = [human.post(url, {"to": state}, format="json").status_code
                 for state in ("blocked", "planned", "blocked", "planned")]
        throttled = human.post(url, {"to": "blocked"}, format="json")

    assert codes == [200, 200, 200, 429]
    assert throttled.json()["error"]["code"] == "throttled" and int(throttled["Retry-After"]) > 0


def test_reads_are_not_held_back_by_the_write_rate(feature):
    human = client_for("human")
    with override_settings(REST_FRAMEWORK=rates(write="1/min")):
        codes = {human.get(f"/api/features/{feature.slug}").status_code for _ in range(5)}
    assert codes == {200}


def test_each_user_has_its_own_write_budget(feature):
    url = f"/api/features/{feature.slug}/wps/{{}}/transition"
    with override_settings(REST_FRAMEWORK=rates(write="1/min")):
        first = client_for("human", username="ann").post(url.format("WP01"), {"to": "blocked"}, format="json")
        other = client_for("human", username="bob").post(url.format("WP02"), {"to": "blocked"}, format="json")
    assert (first.status_code, other.status_code) == (200, 200)


def test_repeated_bad_tokens_from_one_address_turn_from_401_to_429():
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Token " + "f" * 40)
    with override_settings(REST_FRAMEWORK=rates(auth="3/min")):
        codes = [guesser.get("/api/features").status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]


def test_login_attempts_are_rate_limited_per_address(django_user_model):
    django_user_model.objects.create_user("gina", password="right-password")
    with override_settings(REST_FRAMEWORK=rates(auth="2/min")):
        codes = [APIClient().post("/api/auth/token", {"username": "gina", "password": "wrong"},
                                  format="json").status_code for _ in range(2)]
        right = APIClient().post("/api/auth/token", {"username": "gina", "password": "right-password"},
                                 format="json")
    assert codes == [401, 401] and right.status_code == 429
