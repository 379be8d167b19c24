"""A WP's branch: where its agents work, what review and the merge read, and what a fresh start changes."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agileplus.dispatch.models import DispatchJob
from agileplus.dispatch.prompt import build_prompt
from agileplus.review.services import job_to_review
from tests.factories import WorkPackageFactory

pytestmark = pytest.mark.django_db


def finished_job(wp, job_id: str, *, branch: str, state: str, base: str) -> DispatchJob:
    return DispatchJob.objects.create(id=job_id, feature=wp.feature, wp=wp, harness="command", state=state,
                                      requested_by="human:alice", branch=branch, base_commit=base,
                                      finished_at=timezone.now())


def test_a_wp_works_on_its_feature_and_code_branch_until_a_fresh_start():
    wp = WorkPackageFactory(code="WP02", feature__slug="003-auth-system")

    assert wp.branch_name == "feat/003-auth-system-WP02"


def test_after_a_fresh_start_the_wp_works_on_the_branch_it_was_given():
    wp = WorkPackageFactory(code="WP02", feature__slug="003-auth-system",
                            fresh_branch="feat/003-auth-system-WP02-fresh1")

    assert wp.branch_name == "feat/003-auth-system-WP02-fresh1"


def test_the_prompt_names_the_branch_the_agent_must_leave_its_work_on():
    wp = WorkPackageFactory(code="WP02", feature__slug="003-auth-system",
                            fresh_branch="feat/003-auth-system-WP02-fresh1")

    prompt = build_prompt(wp.feature, wp, config={})

    assert "Leave the worktree on branch feat/003-auth-system-WP02-fresh1" in prompt.text


def test_review_measures_a_fresh_branch_from_its_own_job_not_an_older_success_on_the_old_branch():
    wp = WorkPackageFactory(code="WP02", feature__slug="003-auth-system")
    finished_job(wp, "job_old", branch=wp.branch_name, state="succeeded", base="a" * 40)
    wp.fresh_branch = "feat/003-auth-system-WP02-fresh1"
    wp.save()
    fresh = finished_job(wp, "job_fresh", branch=wp.fresh_branch, state="failed", base="b" * 40)

    assert job_to_review(wp) == fresh
