"""The admin applies the importer's bounds (agileplus.features.importer: ``ImportLimits``, through
the same ``estimate_problem`` and ``list_problem``): an estimate outside 0 < days ≤ 1,000 or a list
past its limits is a form error naming the field and the limit, and nothing is saved."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from agileplus.features.import_limits import LIMITS
from agileplus.features.models import WorkPackage
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser("alice", "alice@example.com", "pw"))
    return client


def change_wp(client, wp: WorkPackage, **fields: str):
    form = {"feature": wp.feature_id, "code": wp.code, "title": wp.title, "plan": "", "deliverables": "[]",
            "estimate_days": "2", "owned_paths": "[]", "agent": "", **fields}
    return client.post(f"/admin/features/workpackage/{wp.pk}/change/", form)


@pytest.mark.parametrize("days", ["-5", "0", "1001"])
def test_an_estimate_outside_the_importer_s_bounds_is_refused_naming_the_field_and_the_limit(staff_client, days):
    _, (wp,) = make_feature_with_wps(1)
    WorkPackage.objects.filter(pk=wp.pk).update(estimate_days=Decimal(3))

    response = change_wp(staff_client, wp, estimate_days=days)

    page = response.content.decode()
    assert response.status_code == 200
    assert "estimate_days must be more than 0 and at most 1,000 days (limit estimate_days)" in page
    assert WorkPackage.objects.get(pk=wp.pk).estimate_days == Decimal(3)


def test_an_estimate_within_the_bounds_is_saved(staff_client):
    _, (wp,) = make_feature_with_wps(1)

    response = change_wp(staff_client, wp, estimate_days="1000")

    assert response.status_code == 302 and WorkPackage.objects.get(pk=wp.pk).estimate_days == Decimal(1000)


def test_deliverables_past_the_list_limit_are_refused_naming_the_limit(staff_client):
    _, (wp,) = make_feature_with_wps(1)
    too_many = "[" + ", ".join(f'"f{i}.py"' for i in range(LIMITS.list_items + 1)) + "]"

    response = change_wp(staff_client, wp, deliverables=too_many)

    assert f"at most {LIMITS.list_items} are accepted" in response.content.decode()
    assert WorkPackage.objects.get(pk=wp.pk).deliverables == wp.deliverables
