"""REST API test helpers: a client per role, a small feature, no broker traffic, fresh rate limits."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from agileplus.api.services import create_api_token
from agileplus.dispatch.models import DispatchJob
from agileplus.features.models import Feature
from agileplus.features.services import transition_wp
from tests.factories import make_feature_with_wps

ROLES = ("human", "agent", "ci", "admin")


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Throttle histories live in the cache; database ids repeat between tests on SQLite."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def no_doorbell(monkeypatch):
    """Queued jobs stay queued: nothing rings the broker."""
    rung = []
    monkeypatch.setattr("agileplus.dispatch.services.send_doorbell", rung.append)
    monkeypatch.setattr("agileplus.review.services.request_review", lambda wp: None)
    monkeypatch.setattr("agileplus.review.requests.send_request", lambda request_id: None)
    return rung


def client_for(role: str, *, agent: str = "command", username: str | None = None) -> APIClient:
    client = APIClient()
    key = create_api_token(username or f"{role}-user", role, agent if role == "agent" else None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def feature() -> Feature:
    """WP01..WP03, no dependencies, all planned."""
    feature, _wps = make_feature_with_wps(3, chain=False)
    return feature


def add_job(feature: Feature, code: str, harness: str = "command", state: str = "running",
            job_id: str | None = None) -> DispatchJob:
    wp = feature.work_packages.get(code=code)
    return DispatchJob.objects.create(id=job_id or f"job_{code.lower()}_{harness[:5]}", feature=feature, wp=wp,
                                      harness=harness, state=state, requested_by="human:test")


def move(feature: Feature, code: str, *states: str) -> None:
    wp = feature.work_packages.get(code=code)
    for state in states:
        transition_wp(wp, state, actor="human:setup")
