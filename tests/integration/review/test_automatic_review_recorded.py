"""The automatic review that follows an agent's finish (the ``review.review_wp`` task) is recorded
like a review asked through the API: when it started, when it ended, on which worker, and what it
decided, so the dashboard's timeline draws it as a bar on that worker's row. Here the task's
function runs in the test process, as a worker runs it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agileplus.core.errors import DomainError
from agileplus.review.models import ReviewReport, ReviewRequest
from agileplus.review.requests import run_automatic_review
from agileplus.review.tasks import review_wp
from tests.support.cli import run_cli
from tests.support.farm import import_target, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def named_worker(monkeypatch) -> str:
    monkeypatch.setenv("AGILEPLUS_WORKER_NAME", "w-auto")
    return "w-auto"


@pytest.fixture
def in_review(tmp_path):
    """WP01 implemented by the scripted agent (its branch on the origin), for_review."""
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}))
    assert "for_review" in run_cli("implement 003 --wp WP01 --inline").output
    ReviewRequest.objects.all().delete()  # the doorbell's own review, if a worker ran one: not ours
    return feature


def test_the_automatic_review_records_its_start_end_worker_and_report(in_review):
    wp = in_review.work_packages.get(code="WP01")

    answer = review_wp(wp.pk)

    request = ReviewRequest.objects.get(wp=wp)
    assert answer["approved"] and answer["report"] == request.report_id
    assert (request.kind, request.actor, request.apply, request.state, request.worker) == \
        ("review", "ci:automation", True, "done", "w-auto")
    assert request.created_at <= request.started_at <= request.report.created_at <= request.finished_at


def test_an_automatic_review_that_cannot_run_is_recorded_failed_and_its_error_raised(tmp_path):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}))  # never dispatched: no branch

    with pytest.raises(DomainError, match="has no branch"):
        run_automatic_review(feature.work_packages.get(code="WP01"))

    request = ReviewRequest.objects.get()
    assert (request.state, request.worker, request.error["code"]) == ("failed", "w-auto", "illegal_transition")
    assert request.started_at <= request.finished_at and not ReviewReport.objects.exists()


def test_the_timeline_draws_the_automatic_review_as_a_bar_on_its_workers_row(in_review):
    review_wp(in_review.work_packages.get(code="WP01").pk)
    User.objects.create_user("viewer", password="pw")
    browser = Client()
    browser.login(username="viewer", password="pw")

    page = browser.get("/farm/timeline").content.decode()

    bar = page[page.index('data-kind="review"'):]
    assert bar.startswith('data-kind="review" data-outcome="approved"')
    assert "review of 003-" in bar and "WP01 by ci:automation: approved" in bar
    assert '<text class="row-label" x="6" y="' in page and ">w-auto</text>" in page
