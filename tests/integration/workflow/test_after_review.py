"""What follows a review run with ``apply`` (approved → merge, rejected → doing) is a follow-up
like the others: owed in the review report's own transaction, tried at once by the review's
process, and retried by the reaper until done, so a merge that failed, or that a process dying
after the commit never tried, still happens."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from agileplus.audit.models import AuditEntry
from agileplus.core.errors import RepositoryUnavailable
from agileplus.features.services import transition_wp
from agileplus.review.merge_queue import process_queue
from agileplus.review.models import MergeQueueEntry, ReviewRequest
from agileplus.review.requests import queue_review, run_request
from agileplus.review.services import after_review, run_review
from agileplus.workflow.models import FollowUp
from agileplus.workflow.services import retry_follow_ups
from tests.support.cli import run_cli
from tests.support.farm import TargetRepo, import_target, make_target_repo

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE_OFF = {"strategy": "merge", "queue": "off"}


def in_review(tmp_path, **config):
    """WP01 implemented by the scripted agent (its branch on the origin), for_review; no auto-dispatch."""
    repo = make_target_repo(tmp_path, wps={"WP01": []}, **config)
    feature = import_target(repo)
    assert "for_review" in run_cli("implement 003 --wp WP01 --inline").output
    return repo, feature.work_packages.get(code="WP01")


def before_the_first_attempt(monkeypatch, do) -> dict:
    """``do`` is handed the review's first attempt of the step, inside the report's transaction once
    the follow-up is written (what the database holds then is recorded), and returns what the
    review runs after the commit in its place."""
    seen: dict = {}
    recorder = after_review._function

    def spy(wp, report, wait_for_merge=True):
        first_attempt = recorder(wp, report, wait_for_merge)
        seen["in_transaction"] = transaction.get_connection().in_atomic_block
        seen["owed"] = list(FollowUp.objects.filter(wp=wp).values_list("kind", "report_id"))
        return do(first_attempt)

    monkeypatch.setattr(after_review, "_function", spy)
    return seen


def process_died(_first_attempt):
    """The review's process dies once the report committed: the first attempt never runs."""
    return lambda: False


def reaper_due() -> None:
    """FOLLOW_UP_RETRY_SECONDS have passed since each follow-up's last attempt."""
    FollowUp.objects.update(last_attempt_at=timezone.now() - dt.timedelta(hours=1))


def merged(repo: TargetRepo, wp) -> bool:
    """WP01 is done and its deliverable is on main."""
    wp.refresh_from_db()
    return wp.state == "done" and "wp01/file_1.txt" in repo.git("ls-tree", "-r", "--name-only", "main")


def unreachable(repo: TargetRepo, first_attempt):
    """The origin gone for the first attempt of the step (a network blip), back afterwards."""
    def attempt_without_origin():
        hidden = repo.path.rename(repo.path.with_name("origin-away"))
        try:
            return first_attempt()
        finally:
            hidden.rename(repo.path)
    return attempt_without_origin


def test_the_step_after_a_review_is_owed_in_the_reports_transaction_and_gone_once_merged(tmp_path, monkeypatch):
    repo, wp = in_review(tmp_path)
    seen = before_the_first_attempt(monkeypatch, lambda first_attempt: first_attempt)

    review = run_review(wp, actor="human:alice", apply=True)

    assert seen == {"in_transaction": True, "owed": [("after_review", review.report.pk)]}
    assert merged(repo, wp)
    assert not FollowUp.objects.exists()


def test_a_review_applied_without_auto_dispatch_owes_its_step_too(tmp_path, monkeypatch):
    _repo, wp = in_review(tmp_path)
    before_the_first_attempt(monkeypatch, process_died)

    review = run_review(wp, actor="human:alice", apply=True)

    owed = FollowUp.objects.get(wp=wp)
    assert (owed.kind, owed.report, owed.attempts) == ("after_review", review.report, 0)


def test_a_merge_that_failed_keeps_its_error_and_the_reaper_merges_the_wp(tmp_path, monkeypatch):
    repo, wp = in_review(tmp_path, merge=QUEUE_OFF)
    before_the_first_attempt(monkeypatch, lambda first_attempt: unreachable(repo, first_attempt))
    with pytest.raises(RepositoryUnavailable):  # the caller sees it
        run_review(wp, actor="human:alice", apply=True)
    failed = FollowUp.objects.get(wp=wp)
    assert failed.attempts == 1 and "RepositoryUnavailable: cannot reach the repository" in failed.last_error
    wp.refresh_from_db()
    assert wp.state == "for_review"

    reaper_due()
    assert retry_follow_ups() == [failed.pk]

    assert merged(repo, wp)
    assert not FollowUp.objects.exists()


def test_once_the_wp_is_in_the_merge_queue_the_step_is_done_and_the_queue_merges_it(tmp_path, monkeypatch):
    repo, wp = in_review(tmp_path)
    before_the_first_attempt(monkeypatch, lambda first_attempt: unreachable(repo, first_attempt))
    with pytest.raises(RepositoryUnavailable):  # entered the queue, whose run failed
        run_review(wp, actor="human:alice", apply=True)
    assert MergeQueueEntry.objects.filter(wp=wp, state__in=MergeQueueEntry.ACTIVE).exists()

    reaper_due()
    retry_follow_ups()
    assert not FollowUp.objects.exists()
    process_queue(wp.feature.project.repo_url)  # the queue's own safety net (review.process_merge_queues)

    assert merged(repo, wp)


def test_a_review_whose_process_died_after_its_commit_is_merged_by_the_reaper(tmp_path, monkeypatch):
    repo, wp = in_review(tmp_path)
    before_the_first_attempt(monkeypatch, process_died)
    run_review(wp, actor="human:alice", apply=True)
    assert FollowUp.objects.get(wp=wp).attempts == 0

    reaper_due()
    retry_follow_ups()

    assert merged(repo, wp)
    assert not FollowUp.objects.exists()


def test_the_reaper_merges_as_the_person_who_applied_the_review(tmp_path, monkeypatch):
    _repo, wp = in_review(tmp_path)
    before_the_first_attempt(monkeypatch, process_died)
    run_review(wp, actor="human:alice", apply=True)

    reaper_due()
    retry_follow_ups()

    done = AuditEntry.objects.get(wp=wp, transition="WP01:for_review->done")
    assert done.actor == "human:alice"


def test_the_reaper_leaves_a_step_alone_before_its_retry_interval(tmp_path, monkeypatch, settings):
    _repo, wp = in_review(tmp_path)
    before_the_first_attempt(monkeypatch, process_died)
    run_review(wp, actor="human:alice", apply=True)
    settings.FOLLOW_UP_RETRY_SECONDS = 600

    assert retry_follow_ups() == []
    wp.refresh_from_db()
    assert wp.state == "for_review"


def test_a_waiting_review_request_records_the_merge_conflict_and_the_wp_goes_back(tmp_path, monkeypatch):
    repo, wp = in_review(tmp_path, merge=QUEUE_OFF, behaviour="commit:1,write:shared.txt")

    def main_moved(first_attempt):  # another WP wrote the same file on main meanwhile
        (repo.path / "shared.txt").write_text("main's own\n")
        repo.git("add", "shared.txt")
        repo.git("commit", "-qm", "other: shared.txt")
        return first_attempt

    before_the_first_attempt(monkeypatch, main_moved)
    request = queue_review(wp, actor="human:alice", apply=True, send=False)

    run_request(request.pk, worker="w-review")

    request.refresh_from_db()
    assert (request.state, request.error["code"]) == (ReviewRequest.FAILED, "merge_conflict")
    wp.refresh_from_db()
    assert wp.state == "doing"
    assert "MergeConflict" in FollowUp.objects.get(wp=wp).last_error  # kept until the reaper finds it done


def test_a_step_whose_wp_left_review_is_done_when_the_reaper_finds_it(tmp_path, monkeypatch):
    _repo, wp = in_review(tmp_path)
    before_the_first_attempt(monkeypatch, process_died)
    run_review(wp, actor="human:alice", apply=True)
    transition_wp(wp, "doing", actor="human:alice")

    reaper_due()
    retry_follow_ups()

    wp.refresh_from_db()
    assert wp.state == "doing"
    assert not FollowUp.objects.exists()
