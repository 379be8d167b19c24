"""What follows a WP transition under auto-dispatch is written with the transition and retried
by the reaper until done: a lost review message or a failed dispatch does not stall the feature."""

from __future__ import annotations

import subprocess

import pytest

from agileplus.dispatch.models import DispatchJob
from agileplus.features.services import transition_wp
from agileplus.review.models import ReviewReport
from agileplus.workflow.models import FollowUp
from agileplus.workflow.services import attempt, retry_follow_ups, start_feature
from harnesses.git import branch_name
from tests.support.farm import import_target, make_target_repo
from workers.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def auto_feature(tmp_path, wps, **agent):
    feature = import_target(make_target_repo(tmp_path, wps=wps))
    feature.agent_config = {**feature.agent_config, "auto_dispatch": True, "auto_actor": "human:alice", **agent}
    feature.save()
    return feature


def push_wp_branch(repo_path, feature, code: str) -> None:
    """What an agent run leaves on the origin: the WP's branch with its deliverable committed."""
    git = ["-C", str(repo_path), "-c", "user.name=a", "-c", "user.email=a@localhost"]
    subprocess.run(["git", *git, "checkout", "-q", "-b", branch_name(feature.slug, code)], check=True)
    (repo_path / code.lower()).mkdir()
    (repo_path / code.lower() / "file_1.txt").write_text("done\n")
    subprocess.run(["git", *git, "add", "-A"], check=True)
    subprocess.run(["git", *git, "commit", "-qm", f"feat({code}): add file_1"], check=True)
    subprocess.run(["git", *git, "checkout", "-q", "main"], check=True)


def lose_queued_messages(queue: str) -> int:
    """What a worker SIGKILLed while holding a message (or a broker restart) does to it."""
    with app.connection_for_write() as conn:
        return conn.default_channel.queue_purge(queue)


def test_a_review_whose_message_was_lost_is_sent_again_by_the_reaper_and_happens(tmp_path, settings, monkeypatch):
    feature = auto_feature(tmp_path, {"WP01": []})
    wp = feature.work_packages.get(code="WP01")
    push_wp_branch(tmp_path / "origin", feature, "WP01")
    transition_wp(wp, "doing", actor="agent:command")
    lose_queued_messages("agileplus")  # what earlier tests of this run left there

    transition_wp(wp, "for_review", actor="agent:command")  # the review message goes to the broker...
    assert lose_queued_messages("agileplus") == 1  # ...and is lost there
    pending = FollowUp.objects.get(wp=wp)
    assert (pending.kind, pending.attempts) == ("review", 1)

    settings.FOLLOW_UP_RETRY_SECONDS = 0
    monkeypatch.setitem(app.conf, "task_always_eager", True)  # a worker takes the re-sent message at once
    assert retry_follow_ups() == [pending.pk]

    assert ReviewReport.objects.get(wp=wp).approved
    assert feature.work_packages.get(code="WP01").state == "done"
    assert not FollowUp.objects.exists()


def test_a_dispatch_that_fails_after_a_merge_keeps_its_error_and_is_retried(tmp_path, settings):
    feature = auto_feature(tmp_path, {"WP01": [], "WP02": ["WP01"]}, budget="lots")
    wp1 = feature.work_packages.get(code="WP01")
    wp1.state = "for_review"
    wp1.save()

    transition_wp(wp1, "done", actor="human:alice")  # unblocks WP02; queuing it fails on the bad budget

    failed = FollowUp.objects.get(kind="queue_ready")
    assert "agent.budget" in failed.last_error and failed.attempts == 1
    assert not DispatchJob.objects.filter(wp__code="WP02").exists()
    feature.agent_config = {**feature.agent_config, "budget": {"job_usd": 2}}
    feature.save()
    settings.FOLLOW_UP_RETRY_SECONDS = 0
    retry_follow_ups()
    assert DispatchJob.objects.get(wp__code="WP02").state == "queued"
    assert not FollowUp.objects.exists()


def test_a_follow_up_is_not_retried_before_its_retry_interval(tmp_path, settings):
    feature = auto_feature(tmp_path, {"WP01": []})
    wp = feature.work_packages.get(code="WP01")
    transition_wp(wp, "doing", actor="agent:command")
    transition_wp(wp, "for_review", actor="agent:command")
    lose_queued_messages("agileplus")
    settings.FOLLOW_UP_RETRY_SECONDS = 600
    assert retry_follow_ups() == []
    assert FollowUp.objects.get(wp=wp).attempts == 1


def test_without_auto_dispatch_a_transition_owes_nothing(tmp_path):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}))
    wp = feature.work_packages.get(code="WP01")
    transition_wp(wp, "doing", actor="agent:command")
    transition_wp(wp, "for_review", actor="agent:command")
    assert not FollowUp.objects.exists()


def test_of_two_processes_trying_the_same_follow_up_one_runs_it(tmp_path, monkeypatch):
    feature = auto_feature(tmp_path, {"WP01": []})
    wp = feature.work_packages.get(code="WP01")
    push_wp_branch(tmp_path / "origin", feature, "WP01")
    transition_wp(wp, "doing", actor="agent:command")
    transition_wp(wp, "for_review", actor="agent:command")
    lose_queued_messages("agileplus")
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    seen_by_reaper, seen_by_other = FollowUp.objects.get(wp=wp), FollowUp.objects.get(wp=wp)

    assert attempt(seen_by_reaper) is True
    assert attempt(seen_by_other) is False
    assert ReviewReport.objects.filter(wp=wp).count() == 1


def test_turning_auto_dispatch_on_owes_a_review_to_each_wp_already_waiting(tmp_path):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}))
    wp = feature.work_packages.get(code="WP01")
    transition_wp(wp, "doing", actor="agent:command")
    transition_wp(wp, "for_review", actor="agent:command")

    start_feature(feature, harness=None, actor="human:alice")

    assert lose_queued_messages("agileplus") == 1
    assert FollowUp.objects.get(wp=wp).kind == "review"  # a lost message is re-sent by the reaper
