"""What follows each event of a work package, in order: the one place that says it.

=============================  ==============================================================
event                          what follows
=============================  ==============================================================
agent finished (the runner)    governance over every commit base..head (``JobRun.collect``);
                               clean → WP for_review, violation → WP blocked (``finish_job``)
WP → for_review                REVIEW: the review task runs the checks as ci:automation
review approved                AFTER_REVIEW (``_after_review``, owed by a review run with ``apply``):
                               ``merge_approved``: the WP joins its repository's merge queue; a
                               batch of queued branches merged onto main passes governance and the
                               checks → main moves to it (WPs done, waiting branches rebased); a WP
                               failing alone on main is ejected → WP doing. Queue off:
                               ``move_wp(done)``; a conflict sends it back to doing
review rejected                AFTER_REVIEW: WP → doing (changes requested), then
(→ doing)                      REDISPATCH: the agent's own session resumed with the failing checks
                               (a fresh one where the harness cannot resume: dispatch/sessions.py),
                               up to ``max_review_cycles``; then the WP is blocked for a person
WP → done (merged)             dependents whose dependencies are all done are unblocked
                               (``transition_wp``: audit entry + event), then QUEUE_READY: the
                               ready WPs are queued, up to the feature's and the farm's limits
WP → blocked                   nothing automatic: a person resets it (``wp transition --to
                               planned``); a rate-limited run is not blocked: the runner parks
                               its job until the reset (or reroutes it to a fallback harness)
=============================  ==============================================================

Each step in capitals is a ``FollowUp`` row written in its event's own transaction, run just
after the commit and deleted once done. A step that fails keeps its row with the error; a review
whose message was lost (a worker killed while holding it, a broker restarted) is not done until a
review report exists. The reaper (the ``workflow.retry_follow_ups`` beat task) calls
``retry_follow_ups``, which runs again every row whose last attempt is older than
``FOLLOW_UP_RETRY_SECONDS``.

REVIEW, REDISPATCH and QUEUE_READY are owed only where auto-dispatch is on (``implement --all``):
``transition_wp`` calls ``record_follow_ups`` in its transaction, ``run_follow_ups`` runs them
on commit. AFTER_REVIEW is owed by every review run with ``apply`` (``review --apply``, a review
request, the automatic review), auto-dispatch on or not: the review writes it in its report's
transaction through the port the workflow plugs in at start (``record_after_review``,
``workflow/apps.py``; the gate sits below the workflow), then attempts it at once in its own
process: the caller waits for the merge (or not: the automatic review) and sees its error, which
the row keeps for the reaper. Approved, the step is done once the WP is in the merge queue (the
queue owns it from then) or, queue off, merged; a WP no longer in review owes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agileplus.audit.models import AuditEntry
from agileplus.core.actors import Actor, parse_actor
from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.dispatch.services import enqueue_job
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Feature, WorkPackage
from agileplus.features.services import ready_wps, transition_wp
from agileplus.review import merge_queue
from agileplus.review import services as review_services
from agileplus.review.conflicts import held_back
from agileplus.review.merge import MergeConflict
from agileplus.review.merge_batches import queue_config
from agileplus.review.models import ReviewReport
from agileplus.review.moves import move_wp
from agileplus.workflow.candidates import candidates_config, plan_candidates, start_candidates
from agileplus.workflow.models import FollowUp

log = logging.getLogger("agileplus.workflow")


def follow_ups_for(source: str, target: str, unblocked: bool) -> list[str]:
    """The table above, as code: the follow-ups a transition owes under auto-dispatch."""
    if target == WPState.FOR_REVIEW:
        return [FollowUp.REVIEW]
    if source == WPState.FOR_REVIEW and target == WPState.DOING:
        return [FollowUp.REDISPATCH]
    if target == WPState.DONE or unblocked:
        return [FollowUp.QUEUE_READY]
    return []


def record_follow_ups(feature: Feature, wp: WorkPackage, source: str, target: str, unblocked: bool) -> None:
    """Inside the transition's transaction: write what it owes, and run it once committed."""
    if not auto_on(feature):
        return
    # last_attempt_at: the first attempt is the on-commit one; the reaper waits its retry interval.
    now = timezone.now()
    ids = [FollowUp.objects.create(feature=feature, wp=wp, kind=kind, created_at=now, last_attempt_at=now).pk
           for kind in follow_ups_for(source, target, unblocked)]
    if ids:
        transaction.on_commit(lambda: run_follow_ups(ids))


def run_follow_ups(ids: list[int]) -> None:
    for follow_up in FollowUp.objects.filter(pk__in=ids).select_related("feature", "wp"):
        attempt(follow_up)


def retry_follow_ups() -> list[int]:
    """The reaper's share: run again every follow-up not done since its last attempt."""
    stale = timezone.now() - dt.timedelta(seconds=settings.FOLLOW_UP_RETRY_SECONDS)
    due = FollowUp.objects.filter(attempts__lt=settings.FOLLOW_UP_MAX_ATTEMPTS, last_attempt_at__lte=stale)
    retried = []
    for follow_up in due.select_related("feature", "wp"):
        retried.append(follow_up.pk)
        attempt(follow_up)
    return retried


def attempt(follow_up: FollowUp, *, wait: bool = False, reraise: bool = False) -> bool:
    """Run one follow-up; delete it when done, else record the attempt (and the error).
    The attempt is claimed by a conditional update: of two processes trying the same row
    (the on-commit run and the reaper), one runs it. ``wait``: the caller waits for what the step
    starts (a review request, the merge); ``reraise``: its error is raised to the caller too, once
    kept on the row for the retry."""
    claimed = FollowUp.objects.filter(pk=follow_up.pk, attempts=follow_up.attempts).update(
        attempts=follow_up.attempts + 1, last_attempt_at=timezone.now())
    if not claimed:
        return False
    try:
        done = STEPS[follow_up.kind](follow_up, wait)
    except Exception as exc:  # noqa: BLE001 - the transition committed; the row keeps the error for the retry
        FollowUp.objects.filter(pk=follow_up.pk).update(last_error=f"{type(exc).__name__}: {exc}"[:2000])
        if reraise:  # the caller reports it
            raise
        log.exception("%s after %s failed", follow_up.kind, follow_up.wp)
        return False
    if done:
        FollowUp.objects.filter(pk=follow_up.pk).delete()
    return done


# Each step: (its row, whether a caller waits for what it starts) → done? Run again until done.
def _review(follow_up: FollowUp, wait: bool) -> bool:
    if _review_settled(follow_up):
        return True
    review_services.request_review(follow_up.wp)
    return _review_settled(follow_up)  # with an eager broker the review already ran


def _review_settled(follow_up: FollowUp) -> bool:
    wp = WorkPackage.objects.get(pk=follow_up.wp_id)
    reviewed = ReviewReport.objects.filter(wp=wp, created_at__gte=follow_up.created_at).exists()
    return reviewed or wp.state != WPState.FOR_REVIEW


def _redispatch(follow_up: FollowUp, wait: bool) -> bool:
    wp = WorkPackage.objects.select_related("feature").get(pk=follow_up.wp_id)
    if wp.state == WPState.DOING and not wp.jobs.filter(queued_at__gte=follow_up.created_at).exists():
        redispatch_with_review(wp, wp.feature)
    return True


def _queue_ready(follow_up: FollowUp, wait: bool) -> bool:
    feature = Feature.objects.get(pk=follow_up.feature_id)
    queue_ready(feature, actor=(feature.agent_config or {}).get("auto_actor") or "system:agileplus")
    return True


def _after_review(follow_up: FollowUp, wait: bool) -> bool:
    """A review run with ``apply``: its WP, still in review, is merged when approved
    (``merge_approved``), sent back to its agent when not. Done once the WP left review or
    entered the merge queue (the queue owns it from then; ``wait``: once the queue settled it)."""
    wp = WorkPackage.objects.select_related("feature__project").get(pk=follow_up.wp_id)
    report = ReviewReport.objects.get(pk=follow_up.report_id)
    if wp.state != WPState.FOR_REVIEW or (not wait and merge_queue.active_entry(wp)):
        return True
    actor = parse_actor(report.actor)
    if not report.approved:
        transition_wp(wp, WPState.DOING, actor=actor, metadata={"reason": "changes_requested", "report_id": report.pk})
        return True
    try:
        merge_approved(wp, actor, wait=wait)
    except MergeConflict as exc:  # queue off: main moved since the review; back to its agent, as the queue does
        review_services.send_back_after_conflict(wp, exc)
        raise
    return True


STEPS = {FollowUp.REVIEW: _review, FollowUp.REDISPATCH: _redispatch, FollowUp.QUEUE_READY: _queue_ready,
         FollowUp.AFTER_REVIEW: _after_review}


# --- after a review ---------------------------------------------------------------------------
def record_after_review(wp: WorkPackage, report: ReviewReport, wait_for_merge: bool = True) -> Callable[[], bool]:
    """Inside the transaction of a review report stored with ``apply`` (``review.services.run_review``):
    write the step owed after it, auto-dispatch on or not (a person's ``review --apply`` owes its
    merge too), and return its first attempt, which the review runs here once committed: the
    caller waits for the merge (``wait_for_merge``) and sees its error; the row stays for the
    reaper until the step is done."""
    now = timezone.now()
    follow_up = FollowUp.objects.create(feature=wp.feature, wp=wp, kind=FollowUp.AFTER_REVIEW, report=report,
                                        created_at=now, last_attempt_at=now)
    return lambda: attempt(follow_up, wait=wait_for_merge, reraise=True)


def merge_approved(wp: WorkPackage, actor: Actor | str, *, wait: bool = True) -> None:
    """Review approved → merge. Queue on: enter the queue, run it if no other process is running
    it, and (``wait``) return once the WP is merged or ejected. Queue off: merge at once, as before
    the queue existed."""
    if not queue_config(wp.feature.project).enabled or not wp.jobs.exists():  # no agent: no branch
        move_wp(wp, WPState.DONE, actor=actor)
        return
    entry = merge_queue.enqueue(wp, actor=actor, send_back=True)
    if wait:
        merge_queue.wait_settled(entry)
    else:
        merge_queue.process_queue(entry.repo)


# --- the steps' work ----------------------------------------------------------------------------
def auto_on(feature: Feature) -> bool:
    return bool((feature.agent_config or {}).get("auto_dispatch"))


def _limits(feature: Feature) -> tuple[int, int]:
    per_feature = int((feature.agent_config or {}).get("max_parallel") or 4)
    return per_feature, settings.MAX_PARALLEL_JOBS


def dispatchable_wps(feature: Feature) -> list[WorkPackage]:
    """Ready WPs (``features.services.ready_wps``) without a job in flight."""
    busy = set(DispatchJob.objects.filter(feature=feature, state__in=JobState.ACTIVE).values_list("wp_id", flat=True))
    return [wp for wp in ready_wps(feature) if wp.pk not in busy]


def queue_ready(feature: Feature, *, actor: Actor | str, harness: str | None = None,
                timeout_seconds: int | None = None, retries: int | None = None) -> list[DispatchJob]:
    """Queue the ready WPs, in parallel, up to the feature's and the farm's concurrency limits;
    WPs predicted to conflict with one running wait (``conflict_policy: serialize``)."""
    per_feature, per_farm = _limits(feature)
    running_feature = DispatchJob.objects.filter(feature=feature, state__in=JobState.ACTIVE).count()
    running_farm = DispatchJob.objects.filter(state__in=JobState.ACTIVE).count()
    room = max(0, min(per_feature - running_feature, per_farm - running_farm))
    ready = dispatchable_wps(feature)
    held = held_back(feature, ready)
    for code, other in held.items():
        log.info("%s %s waits for %s: their owned paths overlap (conflict_policy: serialize)",
                 feature.slug, code, other)
    jobs = []
    for wp in [w for w in ready if w.code not in held][:room]:
        if candidates_config(wp):  # best of N for every WP (agent.candidates)
            rnd = start_candidates(wp, actor=actor, plan=plan_candidates(wp), timeout_seconds=timeout_seconds,
                                   retries=retries)
            jobs += [c.job for c in rnd.candidates.select_related("job")]
            continue
        jobs.append(enqueue_job(wp, harness=harness or (feature.agent_config or {}).get("harness"), actor=actor,
                                timeout_seconds=timeout_seconds, retries=retries))
    return jobs


def start_feature(feature: Feature, *, harness: str | None, actor: Actor | str,
                  timeout_seconds: int | None = None, retries: int | None = None) -> list[DispatchJob]:
    """`implement --all`: turn auto-dispatch on and queue every ready WP."""
    actor = parse_actor(actor)
    with transaction.atomic():
        feature = Feature.objects.select_for_update().get(pk=feature.pk)
        config = dict(feature.agent_config or {})
        config["auto_dispatch"] = True
        config["auto_actor"] = str(actor)
        if harness:
            config["harness"] = harness
        if timeout_seconds:
            config["timeout_seconds"] = timeout_seconds
        feature.agent_config = config
        feature.save(update_fields=["agent_config", "updated_at"])
    # Anything already waiting for review is picked up too, as a follow-up (retried like the rest).
    for wp in feature.work_packages.filter(state=WPState.FOR_REVIEW):
        now = timezone.now()
        attempt(FollowUp.objects.create(feature=feature, wp=wp, kind=FollowUp.REVIEW, created_at=now,
                                        last_attempt_at=now))
    return queue_ready(feature, actor=actor, harness=harness, retries=retries)


def redispatch_with_review(wp: WorkPackage, feature: Feature) -> DispatchJob | None:
    """Changes requested: the agent's session (resumed by the runner) gets the failing checks,
    up to ``max_review_cycles``; then the WP is blocked for a person to look at."""
    conflict = AuditEntry.objects.filter(wp=wp, transition=f"{wp.code}:merge_conflict").order_by("-seq").first()
    cycles = ReviewReport.objects.filter(wp=wp, approved=False).count() + \
        AuditEntry.objects.filter(wp=wp, transition=f"{wp.code}:merge_conflict").count()
    limit = int((feature.agent_config or {}).get("max_review_cycles") or 2)
    if cycles >= limit:
        transition_wp(wp, WPState.BLOCKED, actor="system:agileplus",
                      metadata={"reason": "review_cycles_exhausted", "review_cycles": cycles})
        return None
    report = ReviewReport.objects.filter(wp=wp).first()
    failed = [line for check in (report.checks if report else []) if not check["ok"] for line in check["lines"]]
    notes = ["Changes requested by the automated review:", *failed[:20]]
    if conflict and (report is None or report.approved):
        paths = ", ".join((conflict.metadata or {}).get("conflicts", [])) or "(see the audit entry)"
        notes = [f"Your approved branch no longer merges: main changed and conflicts with it in {paths}.",
                 "Rebase onto the current main (git fetch; git rebase origin/main), resolve, and commit."]
    return enqueue_job(wp, harness=(feature.agent_config or {}).get("harness"),
                       actor=(feature.agent_config or {}).get("auto_actor") or "system:agileplus", notes=notes)
