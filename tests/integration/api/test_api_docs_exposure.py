"""The decision on /api/schema/ and /api/docs/: public, because they describe endpoints and carry
no farm data; the data behind them needs a token."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_schema_is_served_anonymously_without_any_farm_data(feature):
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    assert feature.slug.encode() not in response.content


def test_the_data_the_schema_describes_needs_a_token(feature):
    assert APIClient().get(f"/api/features/{feature.slug}").status_code == 401
