"""A WP reset to planned shows no old attempt; one commit is "1 commit"; `costs --by wp` lists
WPs in their order, not in the order they were first dispatched."""

from __future__ import annotations

import json

import pytest

from agileplus.dispatch.models import DispatchJob, JobCommit
from agileplus.features.models import WorkPackage
from agileplus.features.selectors import feature_status
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


def job_with_one_commit(wp, state: str, job_id: str) -> DispatchJob:
    job = DispatchJob.objects.create(id=job_id, feature=wp.feature, wp=wp, harness="command", state=state)
    JobCommit.objects.create(job=job, attempt=1, sha="a" * 40, message="feat(WP01): one", files=["wp01/a.txt"])
    return job


def test_a_wp_reset_to_planned_shows_no_job_of_its_failed_attempt(browser):
    feature, (wp, _) = make_feature_with_wps(2)
    job_with_one_commit(wp, "failed", "job_reset1")  # the WP was blocked, then reset to planned

    assert feature_status(feature)["work_packages"][0]["job"] is None
    assert " file" not in browser.get(f"/features/{feature.slug}/").content.decode()  # no "1 files" card


def test_the_board_says_1_commit_and_1_file(browser):
    feature, (wp, _) = make_feature_with_wps(2)
    WorkPackage.objects.filter(pk=wp.pk).update(state="doing")
    job_with_one_commit(wp, "running", "job_doing1")

    page = browser.get(f"/features/{feature.slug}/").content.decode()

    assert "1 commit · 1 file" in page and "1 commits" not in page


def test_costs_by_wp_are_in_wp_order(browser):
    feature, (wp3, wp4) = make_feature_with_wps(2, chain=False)
    WorkPackage.objects.filter(pk=wp3.pk).update(code="WP03")
    WorkPackage.objects.filter(pk=wp4.pk).update(code="WP04")
    for job_id, wp in (("job_c4", wp4), ("job_c3", wp3)):  # WP04 dispatched first
        DispatchJob.objects.create(id=job_id, feature=feature, wp=wp, harness="command",
                                   usage={"input_tokens": 10, "output_tokens": 1, "cost_usd": "0.01"})

    rows = json.loads(run_cli(f"costs {feature.slug} --by wp --json").output)["rows"]

    assert [r["key"] for r in rows] == [f"{feature.slug} WP03", f"{feature.slug} WP04"]
