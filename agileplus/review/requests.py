"""Review requests: a review, or a move to done through the merge queue, asked for by the API
or the CLI and run on a review worker.

The checks execute the agent's code (its tests, its build). They run in the sandbox wherever
they run, but the process that starts the sandbox is itself a target: the web process holds the
database, the tokens' digests and the farm's secrets. So an API or CLI request only records a
``ReviewRequest`` and rings the review queue; a worker claims it (exactly one wins), runs it and
records the report, the transition or the error. The caller watches the row
(``GET /api/review-requests/ID``, or ``wait_for_request`` in the CLI).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agileplus.core import doorbells
from agileplus.core.actors import CI_AUTOMATION, Actor, parse_actor
from agileplus.core.errors import DomainError, NotFound
from agileplus.dispatch.models import Worker
from agileplus.dispatch.reaper import worker_name
from agileplus.features.lifecycles import WPState, normalize_wp_state
from agileplus.features.models import WorkPackage
from agileplus.features.services import TransitionResult
from agileplus.review.merge_batches import queue_config
from agileplus.review.models import ReviewRequest
from agileplus.review.moves import move_wp
from agileplus.review.services import Review, ensure_may_approve, run_review

log = logging.getLogger("agileplus.review")

POLL_SECONDS = 0.2
ASKED = ("metadata", "expected_source")  # what a move request carries to its worker in ``result``


class RecordedError(DomainError):
    """The error a worker recorded for a request, raised again where the caller waits."""

    def __init__(self, body: dict) -> None:
        super().__init__(body.get("message") or "the review failed", field=body.get("field"), fix=body.get("fix"),
                         **(body.get("details") or {}))
        self.code = body.get("code") or "invalid"
        self.http_status = int(body.get("http_status") or 400)
        self.exit_code = int(body.get("exit_code") or 2)


def queue_review(wp: WorkPackage, *, actor: Actor | str, apply: bool = False, send: bool = True) -> ReviewRequest:
    """Record a review request of ``wp`` and ring the review queue (``send=False``: the caller
    runs it itself, as `agileplus review --inline` does)."""
    return _queue(wp, ReviewRequest.REVIEW, parse_actor(actor), apply=apply, send=send)


def move_runs_checks(wp: WorkPackage, target: str) -> bool:
    """A move to done of a WP in review whose branch goes through the merge queue, which runs
    the review's checks on the candidate: that move belongs on a worker."""
    if normalize_wp_state(target) != WPState.DONE:
        return False
    wp.refresh_from_db()
    return wp.state == WPState.FOR_REVIEW and wp.jobs.exists() and queue_config(wp.feature.project).enabled


def queue_move_to_done(wp: WorkPackage, *, actor: Actor | str, metadata: dict | None = None,
                       expected_source: str | None = None) -> ReviewRequest:
    """Record a move of ``wp`` to done (through the merge queue) and ring the review queue. The
    permission is checked here, at once; ``expected_source`` when the worker runs it."""
    actor = parse_actor(actor)
    ensure_may_approve(wp, actor)
    return _queue(wp, ReviewRequest.MOVE, actor, result={"metadata": metadata, "expected_source": expected_source})


def move_or_queue(wp: WorkPackage, target: str, *, actor: Actor | str, expected_source: str | None = None,
                  metadata: dict | None = None) -> TransitionResult | ReviewRequest:
    """A move asked for by a server process (API, MCP, admin): done at once, unless it is a move
    to done whose merge-queue checks would run the agent's code here; that one is queued for a
    review worker and its request returned."""
    if move_runs_checks(wp, target):
        return queue_move_to_done(wp, actor=actor, metadata=metadata, expected_source=expected_source)
    return move_wp(wp, target, actor=actor, expected_source=expected_source, metadata=metadata)


def _queue(wp: WorkPackage, kind: str, actor: Actor, *, apply: bool = False, send: bool = True,
           result: dict | None = None) -> ReviewRequest:
    request = ReviewRequest.objects.create(feature=wp.feature, wp=wp, kind=kind, actor=str(actor), apply=apply,
                                           result=result or {})
    if send:
        transaction.on_commit(lambda: send_request(request.pk))
    return request


def send_request(request_id: int) -> None:
    """Ring the broker: only the request's id travels; the task is rung by its name
    (``core/doorbells.py``): the task layer imports this module."""
    doorbells.ring("review.run_request", args=[request_id], queue="agileplus")


def get_request(request_id: int | str) -> ReviewRequest:
    try:
        return ReviewRequest.objects.select_related("wp", "feature", "report").get(pk=int(request_id))
    except (ReviewRequest.DoesNotExist, ValueError):
        raise NotFound(f"no review request {request_id}", field="id",
                       fix="use the id the review or move answered with") from None


def claim_request(request_id: int, worker: str) -> ReviewRequest | None:
    """Take a queued request; a duplicate delivery (or a second worker) gets None."""
    won = ReviewRequest.objects.filter(pk=request_id, state=ReviewRequest.QUEUED).update(
        state=ReviewRequest.RUNNING, worker=worker[:200], started_at=timezone.now())
    return get_request(request_id) if won else None


def release_lost_requests(worker: str) -> list[int]:
    """What a worker does as it starts: the requests its previous life was running (killed
    mid-review) are queued again and re-sent, so their callers are not left waiting."""
    lost = list(ReviewRequest.objects.filter(worker=worker[:200], state=ReviewRequest.RUNNING)
                .values_list("pk", flat=True))
    ReviewRequest.objects.filter(pk__in=lost, state=ReviewRequest.RUNNING).update(
        state=ReviewRequest.QUEUED, worker="", started_at=None)
    for request_id in lost:
        transaction.on_commit(lambda request_id=request_id: send_request(request_id))
    return lost


def release_requests_of_silent_workers() -> list[int]:
    """Beat's safety net for a worker that never comes back (its host is gone, so no restart
    releases its requests): a running request whose worker has not announced itself for
    ``WORKER_SILENT_SECONDS`` is queued again and re-sent. A live worker announces itself from a
    thread of its own every ``WORKER_HEARTBEAT_SECONDS``, however long its review runs."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.WORKER_SILENT_SECONDS)
    alive = Worker.objects.filter(last_heartbeat__gte=cutoff).values_list("hostname", flat=True)
    silent = list(ReviewRequest.objects.filter(state=ReviewRequest.RUNNING, started_at__lt=cutoff)
                  .exclude(worker__in=list(alive)).values_list("pk", "worker"))
    released = []
    for request_id, worker in silent:
        moved = ReviewRequest.objects.filter(pk=request_id, state=ReviewRequest.RUNNING, worker=worker).update(
            state=ReviewRequest.QUEUED, worker="", started_at=None)
        if moved:
            log.warning("review request %s: worker %s silent for %.0f s, queued again", request_id, worker,
                        settings.WORKER_SILENT_SECONDS)
            transaction.on_commit(lambda request_id=request_id: send_request(request_id))
            released.append(request_id)
    return released


def ring_stale_requests() -> list[int]:
    """Beat's safety net for a lost doorbell: a request still queued after
    ``max(30 s, the job lease)`` is rung again. Neither embedded broker redelivers a message whose
    worker was killed with -9 (nor does Redis before its visibility timeout); a second ring is
    harmless, since only one claim of a queued request wins (``claim_request``)."""
    stale = timezone.now() - dt.timedelta(seconds=max(30, settings.JOB_LEASE_SECONDS))
    queued = list(ReviewRequest.objects.filter(state=ReviewRequest.QUEUED, created_at__lt=stale)
                  .values_list("pk", flat=True))
    for request_id in queued:
        send_request(request_id)
    return queued


def run_request(request_id: int, *, worker: str | None = None) -> ReviewRequest | None:
    """Run one request here (a review worker, or the CLI with ``--inline``) and record how it
    ended. Returns None when another process has it."""
    request = claim_request(request_id, worker or worker_name())
    if request is None:
        return None
    with recording(request, reraise=False) as outcome:
        if request.kind == ReviewRequest.MOVE:
            asked = request.result or {}
            moved = move_wp(request.wp, WPState.DONE, actor=request.actor, metadata=asked.get("metadata"),
                            expected_source=asked.get("expected_source"))
            outcome["result"] = moved.as_dict()  # as the move answers it (api.output.MovedOut)
        else:
            outcome["report"] = run_review(request.wp, actor=request.actor, apply=request.apply).report
    return get_request(request_id)


def run_automatic_review(wp: WorkPackage, *, worker: str | None = None) -> Review:
    """The review that follows an agent's finish (auto mode), run here and now but recorded as a
    request like one asked through the API: the dashboard's timeline draws every review from its
    start, end and worker. Approval hands the WP to the merge queue without waiting for it (the
    task runs the queue itself); a ``DomainError`` is recorded and raised to the caller."""
    request = _queue(wp, ReviewRequest.REVIEW, CI_AUTOMATION, apply=True, send=False)
    claim_request(request.pk, worker or worker_name())  # a row of its own: this claim wins
    with recording(request, reraise=True) as outcome:
        review = run_review(wp, actor=CI_AUTOMATION, apply=True, wait_for_merge=False)
        outcome["report"] = review.report
    return review


@contextmanager
def recording(request: ReviewRequest, *, reraise: bool) -> Iterator[dict]:
    """Record how the run of a claimed ``request`` ends: done with what the body put in the
    yielded dict (``report``, ``result``), or failed with the error as the API renders it. A
    ``DomainError`` is raised again only when ``reraise``; any other error always is."""
    outcome: dict = {}
    try:
        yield outcome
    except DomainError as exc:
        _finish(request, ReviewRequest.FAILED, error={**exc.as_dict(), "http_status": exc.http_status,
                                                       "exit_code": exc.exit_code})
        if reraise:
            raise
    except Exception:
        log.exception("review request %s failed", request.pk)
        _finish(request, ReviewRequest.FAILED, error={"code": "internal", "message": "the review worker failed",
                                                       "fix": "see the worker's log", "http_status": 500,
                                                       "exit_code": 1})
        raise
    else:
        _finish(request, ReviewRequest.DONE, **outcome)


def _finish(request: ReviewRequest, state: str, *, report=None, result: dict | None = None,
            error: dict | None = None) -> None:
    ReviewRequest.objects.filter(pk=request.pk).update(
        state=state, report=report, result=result if result is not None else request.result, error=error,
        progress="", finished_at=timezone.now())


def request_as_dict(request: ReviewRequest) -> dict:
    """What the API answers about a request (202 when queued; then ``GET`` until it is final)."""
    report = request.report
    return {"id": request.pk, "kind": request.kind, "feature": request.feature.slug, "wp": request.wp.code,
            "state": request.state, "actor": request.actor, "apply": request.apply, "worker": request.worker or None,
            "url": f"/api/review-requests/{request.pk}",
            "report": {"id": report.pk, "approved": report.approved, "checks": report.checks, "text": report.text}
            if report else None,
            "result": {k: v for k, v in (request.result or {}).items() if k not in ASKED} or None,
            "error": {k: v for k, v in request.error.items() if k not in ("http_status", "exit_code")}
            if request.error else None,
            **{name: moment.isoformat() if (moment := getattr(request, name)) else None
               for name in ("created_at", "started_at", "finished_at")}}


def wait_for_request(request_id: int, *, on_change: Callable[[ReviewRequest], None] | None = None,
                     poll: float = POLL_SECONDS) -> ReviewRequest:
    """Until a worker has run the request; ``on_change`` sees each new state (progress for a
    waiting CLI). A failed request raises the error the worker recorded."""
    seen = None
    while True:
        request = get_request(request_id)
        if on_change and (request.state, request.worker) != seen:
            seen = (request.state, request.worker)
            on_change(request)
        if request.state in ReviewRequest.FINAL:
            break
        time.sleep(poll)
    if request.state == ReviewRequest.FAILED:
        raise RecordedError(request.error or {})
    return request
