"""A review, or a move to done through the merge queue, asked for by the API or the CLI is a
review request: the caller records it and a review worker runs it (the checks execute the
agent's code, never in the web process). Here ``run_request`` plays the worker's part, as the
``review.run_request`` task does; tests/security/test_review_runs_on_a_worker.py runs the real
worker and web processes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from agileplus.dispatch.models import Worker
from agileplus.review.models import MergeQueueEntry, ReviewReport, ReviewRequest
from agileplus.review.requests import (
    RecordedError,
    claim_request,
    get_request,
    queue_review,
    release_lost_requests,
    release_requests_of_silent_workers,
    ring_stale_requests,
    run_request,
    wait_for_request,
)
from tests.integration.api.conftest import client_for
from tests.support.cli import run_cli
from tests.support.farm import import_target, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def rung(monkeypatch) -> list[int]:
    """The review queue's doorbell, recorded here: no worker runs in these tests."""
    sent: list[int] = []
    monkeypatch.setattr("agileplus.review.requests.send_request", sent.append)
    return sent


@pytest.fixture
def in_review(tmp_path):
    """WP01 implemented by the scripted agent (its branch on the origin), for_review."""
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": ["WP01"]})
    feature = import_target(repo)
    assert "for_review" in run_cli("implement 003 --wp WP01 --inline").output
    return repo, feature


def test_the_api_answers_a_review_at_once_with_where_to_watch_and_runs_nothing_itself(in_review, rung):
    _repo, feature = in_review

    asked = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/review", {}, format="json")

    assert asked.status_code == 202, asked.json()
    body = asked.json()
    assert rung == [body["id"]]  # the review queue was rung with the request's id
    assert (body["state"], body["kind"], body["url"]) == ("queued", "review", f"/api/review-requests/{body['id']}")
    assert not ReviewReport.objects.exists()  # no check ran in this (the web) process
    watched = client_for("human").get(body["url"]).json()
    assert watched["state"] == "queued" and watched["report"] is None


def test_a_review_request_run_by_a_worker_is_watched_to_its_report(in_review):
    _repo, feature = in_review
    asked = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/review", {}, format="json").json()

    run_request(asked["id"], worker="w-review")

    done = client_for("human").get(asked["url"]).json()
    assert (done["state"], done["worker"]) == ("done", "w-review")
    assert done["report"]["approved"] and done["report"]["text"].startswith("Reviewing WP01")


def test_a_request_delivered_twice_runs_once(in_review):
    _repo, feature = in_review
    request = queue_review(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)

    first, second = run_request(request.pk, worker="w1"), run_request(request.pk, worker="w2")

    assert first.state == "done" and second is None
    assert ReviewReport.objects.count() == 1


def test_a_failed_request_keeps_its_error_and_the_waiting_caller_gets_it(tmp_path):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}))  # never dispatched: no branch
    request = queue_review(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)

    run_request(request.pk, worker="w1")

    with pytest.raises(RecordedError) as raised:
        wait_for_request(request.pk)
    assert raised.value.code == "illegal_transition" and raised.value.exit_code == 3
    assert "has no branch" in raised.value.message and raised.value.fix


def test_the_cli_review_shows_the_workers_error_as_its_own(tmp_path):
    import_target(make_target_repo(tmp_path, wps={"WP01": []}))

    result = run_cli("review 003 WP01 --inline")

    assert result.exit_code == 3 and "has no branch" in result.output


def test_an_api_move_to_done_through_the_merge_queue_is_queued_for_a_worker(in_review):
    repo, feature = in_review
    main_before = repo.head()

    asked = client_for("ci").post(f"/api/features/{feature.slug}/wps/WP01/move", {"to": "done"}, format="json")

    assert asked.status_code == 202, asked.json()
    assert asked.json()["kind"] == "move" and asked.json()["state"] == "queued"
    assert feature.work_packages.get(code="WP01").state == "for_review"
    assert not MergeQueueEntry.objects.exists() and repo.head() == main_before


def test_a_queued_move_to_done_merges_when_a_worker_runs_it(in_review):
    repo, feature = in_review
    asked = client_for("ci").post(f"/api/features/{feature.slug}/wps/WP01/move", {"to": "done"}, format="json").json()

    run_request(asked["id"], worker="w-review")

    done = client_for("ci").get(asked["url"]).json()
    assert done["state"] == "done", done
    assert (done["result"]["from"], done["result"]["to"], done["result"]["unblocked"]) == ("for_review", "done",
                                                                                           ["WP02"])
    assert feature.work_packages.get(code="WP01").state == "done"
    assert repo.subjects()[0].startswith("Merge branch 'feat/003-auth-system-WP01'")


def test_an_agent_may_not_queue_a_move_to_done(in_review):
    _repo, feature = in_review

    refused = client_for("agent").post(f"/api/features/{feature.slug}/wps/WP01/move", {"to": "done"}, format="json")

    assert refused.status_code == 403
    assert not ReviewRequest.objects.exists()


def test_a_worker_restarting_queues_again_the_requests_its_previous_life_was_running(in_review, rung):
    _repo, feature = in_review
    sent = rung
    request = queue_review(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)
    claim_request(request.pk, "w1")  # then w1 was killed mid-review

    assert release_lost_requests("w1") == [request.pk]

    assert sent == [request.pk] and get_request(request.pk).state == "queued"
    assert run_request(request.pk, worker="w2").state == "done"


def test_a_request_whose_worker_went_silent_is_queued_again_for_another_worker(in_review, rung, settings):
    _repo, feature = in_review
    settings.WORKER_SILENT_SECONDS = 30
    long_ago = timezone.now() - dt.timedelta(minutes=5)
    Worker.objects.create(hostname="gone", last_heartbeat=long_ago)  # its host never came back
    request = queue_review(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)
    claim_request(request.pk, "gone")
    ReviewRequest.objects.filter(pk=request.pk).update(started_at=long_ago)

    assert release_requests_of_silent_workers() == [request.pk]

    assert rung == [request.pk] and get_request(request.pk).state == "queued"
    assert run_request(request.pk, worker="w2").state == "done"


def test_a_request_whose_worker_still_announces_itself_is_left_running(in_review, rung, settings):
    _repo, feature = in_review
    settings.WORKER_SILENT_SECONDS = 30
    Worker.objects.create(hostname="busy", last_heartbeat=timezone.now())  # a long review, a live worker
    request = queue_review(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)
    claim_request(request.pk, "busy")
    ReviewRequest.objects.filter(pk=request.pk).update(started_at=timezone.now() - dt.timedelta(minutes=5))

    assert release_requests_of_silent_workers() == []

    assert rung == [] and get_request(request.pk).state == "running"


def test_a_request_whose_doorbell_was_lost_is_rung_again_and_run_once(in_review, rung):
    _repo, feature = in_review
    request = queue_review(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)
    ReviewRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))

    assert ring_stale_requests() == [request.pk]

    assert run_request(request.pk, worker="w1").state == "done"
    assert run_request(request.pk, worker="w2") is None  # the first ring's late delivery claims nothing


def test_a_request_queued_a_moment_ago_is_not_rung_again(in_review, rung):
    _repo, feature = in_review
    queue_review(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)

    assert ring_stale_requests() == [] and rung == []
