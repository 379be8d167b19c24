"""Review's Celery tasks (auto mode): review as ci:automation; merge when approved; beat's
merge-queue safety net."""

from __future__ import annotations

import logging

from agileplus.core.errors import DomainError
from agileplus.features.lifecycles import WPState
from agileplus.features.models import WorkPackage
from agileplus.review.merge_queue import process_queue
from agileplus.review.models import MergeQueueEntry
from agileplus.review.requests import (
    release_requests_of_silent_workers,
    ring_stale_requests,
    run_automatic_review,
    run_request,
)
from workers.celery import app

log = logging.getLogger("agileplus.merge_queue")


@app.task(name="review.review_wp", acks_late=True)
def review_wp(wp_id: int) -> dict:
    wp = WorkPackage.objects.select_related("feature__project").get(pk=wp_id)
    if wp.state != WPState.FOR_REVIEW:
        return {"skipped": wp.state}
    try:
        review = run_automatic_review(wp)
    except DomainError as exc:  # e.g. main moved between the review and the merge: the WP went back to its agent
        return {"error": exc.as_dict()}
    finally:  # WPs approved while this review held the repository's lock wait for a queue run
        _run_merge_queue(wp.feature.project.repo_url)
    return {"approved": review.approved, "report": review.report.pk}


@app.task(name="review.run_request", acks_late=True)
def run_review_request(request_id: int) -> dict:
    """A review or a move to done asked for by the API or the CLI: run here, on a worker."""
    request = run_request(request_id)
    return {"skipped": True} if request is None else {"state": request.state}


@app.task(name="review.release_silent_requests")
def release_silent_requests() -> dict:
    """Beat: review requests whose worker went silent are queued again for another worker, and
    requests whose doorbell was lost are rung again."""
    return {"released": release_requests_of_silent_workers(), "rung": ring_stale_requests()}


def _run_merge_queue(repo: str) -> None:
    try:
        process_queue(repo)
    except DomainError as exc:  # e.g. the origin is unreachable: the entries stay queued for the next run
        log.warning("merge queue of %s not run: %s", repo, exc)


@app.task(name="review.process_merge_queues")
def process_merge_queues() -> dict:
    """Beat's safety net: run any queue whose entries wait with no process running it (its
    holder died, or every approver returned while another held the lock)."""
    repos = set(MergeQueueEntry.objects.filter(state__in=MergeQueueEntry.ACTIVE).values_list("repo", flat=True))
    for repo in sorted(repos):
        _run_merge_queue(repo)
    return {"repos": sorted(repos)}
