"""The response shapes read a selector's dict key by key (a fast path); what they render is what
DRF's own serializer rendering gives for the same dict, including keys left out and nulls."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from agileplus.api import output
from agileplus.features.selectors import feature_status
from agileplus.features.services import transition_wp
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db


@pytest.fixture
def drf_rendering(monkeypatch):
    """Render with DRF's own Serializer.to_representation at every level (nested shapes too)."""

    def render(shape: type[serializers.Serializer], data: dict) -> dict:
        with monkeypatch.context() as patched:
            patched.setattr(output.Shape, "to_representation", serializers.Serializer.to_representation)
            return shape(data).data

    return render


def test_a_feature_status_renders_as_drf_renders_it(drf_rendering):
    feature, wps = make_feature_with_wps(3, chain=True, title="Shapes")
    transition_wp(wps[0], "doing", actor="human:test")
    status = {**feature_status(feature, after="", limit=2), "cost_usd": "0.5"}

    assert output.FeatureStatusOut(status).data == drf_rendering(output.FeatureStatusOut, status)


def test_an_optional_key_left_out_stays_out(drf_rendering):
    error = {"code": "not_found", "message": "no feature 'x'"}

    assert output.ErrorDetailOut(error).data == drf_rendering(output.ErrorDetailOut, error) == error


def test_a_nullable_key_left_out_renders_as_null():
    page = {"results": [], "next_after": None}

    assert output.WPListOut(page).data == {"results": [], "next_after": None, "next": None}
