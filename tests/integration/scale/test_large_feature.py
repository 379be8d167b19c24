"""A feature of thousands of WPs (2,000 here; bench/bench_import.py measures 10,000) stays
servable: the API and the dashboard answer a page of WPs with the whole feature's totals, one
WP's detail does not build the whole feature, the admin list and `status` answer, and the
predicted conflicts are not a comparison of every pair."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.factories import make_large_feature
from tests.integration.api.conftest import client_for
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db(transaction=True)

WPS = 2_000
CODES = sorted(f"WP{i:02d}" for i in range(1, WPS + 1))  # pages follow the codes' text order


@pytest.fixture
def big():
    return make_large_feature(WPS)


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-12345"))
    return client


def test_the_api_feature_detail_is_one_page_of_wps_with_the_whole_features_totals(big):
    body = client_for("human").get(f"/api/features/{big.slug}").json()
    assert len(body["work_packages"]) == 200
    assert [w["code"] for w in body["work_packages"]] == CODES[:200]
    assert body["work_packages_page"]["next_after"] == CODES[199]
    assert body["totals"] == {"done": 0, "total": WPS, "percent": 0}
    assert body["estimated_completion"]["days"] == WPS


def test_the_wp_list_pages_through_every_wp_once(big):
    client, seen, after = client_for("human"), [], ""
    while True:
        body = client.get(f"/api/features/{big.slug}/wps", {"after": after, "limit": 1000}).json()
        seen += [w["code"] for w in body["results"]]
        if not body["next_after"]:
            break
        after = body["next_after"]
    assert seen == CODES


def test_one_wps_detail_reads_only_that_wp(big):
    client = client_for("human")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/api/features/{big.slug}/wps/WP1000")
    assert response.json()["blocked_by"] == ["WP999"]
    wp_reads = [q["sql"] for q in queries.captured_queries if 'FROM "features_workpackage"' in q["sql"]]
    assert wp_reads and all('"features_workpackage"."code"' in sql or '"features_workpackage"."id" IN' in sql
                            for sql in wp_reads)
    assert len(response.content) < 5_000


def test_the_dashboard_board_shows_a_page_of_wps_and_links_the_next(big, staff_client):
    response = staff_client.get(f"/features/{big.slug}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('class="wp ') == 200 and f'href="?after={CODES[199]}"' in html
    assert f"200 of {WPS} work packages" in html
    assert len(response.content) < 300_000


def test_a_later_dashboard_page_starts_after_the_code_given(big, staff_client):
    html = staff_client.get(f"/features/{big.slug}/panel", {"after": CODES[1500]}).content.decode()
    assert f'data-wp="{CODES[1501]}"' in html and f'data-wp="{CODES[1500]}"' not in html and "next page" in html


def test_the_admin_work_package_list_answers(big, staff_client):
    assert staff_client.get("/admin/features/workpackage/").status_code == 200


def test_status_of_the_feature_answers_with_every_wp(big):
    result = run_cli(f"status {big.slug}")
    assert result.exit_code == 0 and f"Total WP progress: 0/{WPS} (0%)" in result.output
