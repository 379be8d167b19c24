"""Dispatch jobs: enqueue, claim, lease, fence, report, finish, reap.

The database is the record of truth; the broker message carries only the job id.
A claim is a conditional UPDATE (one winner however often the task is delivered);
``attempt`` is the fencing token every later write must present; leases use the
database clock, so workers' clocks do not matter.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.db.models.functions import Now
from django.utils import timezone

from agileplus.core import doorbells
from agileplus.core.actors import SYSTEM, SYSTEM_TIMEOUT, Actor, parse_actor
from agileplus.core.errors import BlockedByDependency, DomainError, IllegalTransition, NotFound
from agileplus.core.redaction import redact, redact_data
from agileplus.core.text import storable_json, storable_text
from agileplus.dispatch.candidacy import Candidacy, candidacy_of
from agileplus.dispatch.claims import Claim, _held, _lock_held
from agileplus.dispatch.job_log import append_log
from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.events import subjects
from agileplus.events.services import record_event
from agileplus.features.lifecycles import WPState
from agileplus.features.models import WorkPackage
from agileplus.features.project_config import budget_config
from agileplus.features.services import blocking_dependencies, transition_wp
from harnesses.base import HarnessError
from harnesses.registry import get_adapter

DEFAULT_HARNESS = "command"
DEFAULT_TIMEOUT = 3600
DEFAULT_RETRIES = 2


def new_job_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "job_" + "".join(secrets.choice(alphabet) for _ in range(10))


def _lease_until(seconds: int | None = None):
    return ExpressionWrapper(
        Now() + dt.timedelta(seconds=seconds or settings.JOB_LEASE_SECONDS), output_field=DateTimeField()
    )


def job_config(wp: WorkPackage) -> dict:
    """The agent section of the feature's config (harness, timeout, retries, environment…)."""
    return dict(wp.feature.agent_config or {})


def enqueue_job(
    wp: WorkPackage,
    *,
    harness: str | None = None,
    actor: Actor | str,
    timeout_seconds: int | None = None,
    retries: int | None = None,
    notes: list[str] | None = None,
    send: bool = True,
    replay_of: str | None = None,
    candidacy: Candidacy | None = None,
) -> DispatchJob:
    """Queue one agent run for a ready WP. The WP moves to doing when the agent starts.
    ``candidacy``: one of several candidates (best of N), beside its round's other jobs."""

    actor = parse_actor(actor)
    config = job_config(wp)
    harness = check_request(wp, harness, timeout_seconds, retries)
    with transaction.atomic():
        wp = WorkPackage.objects.select_for_update().select_related("feature").get(pk=wp.pk)
        rework = wp.state == WPState.DOING and not wp.jobs.filter(state__in=JobState.ACTIVE).exists()
        if wp.state != WPState.PLANNED and not rework:
            raise IllegalTransition(
                f"{wp.code} is {wp.state}; only a planned WP can be dispatched",
                field="wp",
                fix=f"`agileplus wp transition {wp.code} --to planned` resets a blocked WP"
                if wp.state == WPState.BLOCKED else "wait for the running job or review it",
            )
        blockers = blocking_dependencies(wp)
        if blockers:
            raise BlockedByDependency(
                f"{wp.code} is blocked by " + ", ".join(f"{b.code} ({b.state})" for b in blockers),
                field="wp",
                fix="finish the blocking work packages first",
                blocked_by=[b.code for b in blockers],
            )
        # A candidate's round siblings run beside it (read here, not by a JSON lookup: a job
        # without the key would fall out of an SQL exclude as NULL).
        active = next((j for j in wp.jobs.filter(state__in=JobState.ACTIVE)
                       if candidacy is None or getattr(candidacy_of(j), "round_id", None) != candidacy.round_id), None)
        if active:
            raise IllegalTransition(f"{wp.code} already has an active job {active.id} ({active.state})",
                                    field="wp", fix=f"`agileplus jobs cancel {active.id}` first")
        job = DispatchJob.objects.create(
            id=new_job_id(),
            feature=wp.feature,
            wp=wp,
            harness=harness,
            timeout_seconds=timeout_seconds or int(config.get("timeout_seconds") or DEFAULT_TIMEOUT),
            max_attempts=1 + (retries if retries is not None else int(config.get("retries", DEFAULT_RETRIES))),
            requested_by=str(actor),
            result={"notes": notes or [], **({"replay_of": replay_of} if replay_of else {}),
                    **({"candidate": candidacy.as_dict()} if candidacy else {})},
        )
        if send:
            transaction.on_commit(lambda: send_doorbell(job))
    return job


def check_request(wp: WorkPackage, harness: str | None, timeout_seconds: int | None, retries: int | None) -> str:
    """Refuse, naming the field, what would only fail later on a worker; returns the harness to run."""
    config = job_config(wp)
    harness = harness or config.get("harness") or DEFAULT_HARNESS
    try:
        get_adapter(harness)
    except HarnessError as exc:
        raise DomainError(str(exc), field="agent", fix="run `agileplus agents list` to see the harnesses") from None
    budget_config(config)  # a bad budget is refused here, naming the key, not mid-run
    if timeout_seconds is not None and timeout_seconds <= 0:
        raise DomainError("timeout must be a positive number of seconds", field="timeout")
    if retries is not None and retries < 0:
        raise DomainError("retries cannot be negative", field="retries")
    return harness


def replay_job(job_id: str, *, actor: Actor | str, harness: str | None = None, send: bool = True) -> DispatchJob:
    """Dispatch the manifest of ``job_id`` again (same prompt, same base), to the same or another harness."""
    original = DispatchJob.objects.select_related("wp").filter(pk=job_id).first()
    if original is None:
        raise NotFound(f"no job {job_id}", field="job", fix="`agileplus jobs list` shows the jobs")
    if not original.manifest or not original.prompt:
        raise DomainError(f"{job_id} never started, so it has no manifest to replay", field="job",
                          fix="replay a job that ran (`agileplus jobs show JOB` shows its manifest hash)")
    return enqueue_job(original.wp, harness=harness or original.harness, actor=actor,
                       timeout_seconds=original.timeout_seconds, replay_of=original.id, send=send,
                       notes=list((original.result or {}).get("notes") or []))


def reroute_rate_limited(job: DispatchJob) -> DispatchJob | None:
    """A rate-limited backend: hand the WP to the next harness in ``agent.fallback_harnesses``
    that this WP has not tried yet (blocked → planned → queued, each step audited)."""
    fallbacks = [h for h in (job_config(job.wp).get("fallback_harnesses") or []) if isinstance(h, str)]
    tried = set(job.wp.jobs.values_list("harness", flat=True))
    nxt = next((h for h in fallbacks if h not in tried), None)
    wp = WorkPackage.objects.get(pk=job.wp_id)
    if nxt is None or wp.state != WPState.BLOCKED:
        return None
    transition_wp(wp, WPState.PLANNED, actor="system:router",
                  metadata={"reason": "rate_limited", "from_harness": job.harness, "to_harness": nxt})
    return enqueue_job(wp, harness=nxt, actor="system:router",
                       notes=[f"{job.harness} was rate-limited ({job.error[:200]}); continue the work"])


def send_doorbell(job: DispatchJob) -> None:
    """Ring the broker: only the job id travels; the queue is the harness's. The task is rung by
    its name (``core/doorbells.py``): the task layer imports this module."""
    # A parked job's doorbell rings at its time (the broker holds it): the one mechanism that
    # re-sends it; the reaper's re-ring of old queued jobs is the safety net once that time passed.
    eta = job.not_before if job.not_before and job.not_before > timezone.now() else None
    doorbells.ring("farm.run_job", args=[job.id], queue=queue_for(job.harness), **({"eta": eta} if eta else {}))


def queue_for(harness: str) -> str:
    return f"agents.{harness}"


def claim_job(job_id: str, worker: str) -> Claim | None:
    """Take a queued job. Exactly one caller wins; the others get None."""
    won = DispatchJob.objects.filter(
        Q(not_before__isnull=True) | Q(not_before__lte=Now()),
        pk=job_id, state=JobState.QUEUED, attempt__lt=F("max_attempts"), cancel_requested=False,
    ).update(
        state=JobState.CLAIMED,
        attempt=F("attempt") + 1,
        worker=worker,
        claimed_at=Now(),
        heartbeat_at=Now(),
        lease_expires_at=_lease_until(),
    )
    if not won:
        return None
    attempt = DispatchJob.objects.values_list("attempt", flat=True).get(pk=job_id)
    return Claim(job_id, attempt, worker)


def heartbeat(claim: Claim) -> bool:
    """Extend the lease. False when the attempt is no longer ours (stop the agent)."""
    return bool(_held(claim).update(heartbeat_at=Now(), lease_expires_at=_lease_until()))


def start_running(claim: Claim, **fields) -> DispatchJob:
    """The agent is about to start: record where and how, move the WP to doing, emit `started`."""
    with transaction.atomic():
        job = _lock_held(claim)
        for name, value in fields.items():
            setattr(job, name, value)
        job.state = JobState.RUNNING
        job.started_at = timezone.now()
        job.save()
        if job.wp.state == WPState.PLANNED:
            transition_wp(job.wp, WPState.DOING, actor=f"agent:{job.harness}", event_extra={"job_id": job.id},
                          metadata={"job_id": job.id, "attempt": claim.attempt,
                                    "manifest_hash": (job.manifest or {}).get("hash")})
        WorkPackage.objects.filter(pk=job.wp_id).update(agent=job.harness)
        record_event(
            subjects.job_event(job.id, "started"),
            {"feature_slug": job.feature.slug, "wp_id": job.wp.code, "pid": job.pid, "attempt": claim.attempt},
            feature_id=job.feature_id,
        )
    return job


def cancel_requested(claim: Claim) -> bool:
    return DispatchJob.objects.filter(pk=claim.job_id, cancel_requested=True).exists()


@dataclass
class Outcome:
    state: str  # succeeded | failed | timed_out | cancelled
    exit_code: int | None
    reason: str = ""
    detail: str = ""
    metadata: dict = field(default_factory=dict)  # extra audit metadata (e.g. governance violations)
    evidence: list = field(default_factory=list)  # audit evidence refs (offending commits/paths)


def finish_job(claim: Claim, outcome: Outcome, *, result: dict) -> DispatchJob:
    """Record the end of the run and move the WP: for_review on success, blocked otherwise."""
    with transaction.atomic():
        job = _lock_held(claim)
        job.state = outcome.state
        job.exit_code = outcome.exit_code
        job.finished_at = timezone.now()
        job.lease_expires_at = None
        job.result = storable_json(redact_data({**(job.result or {}), **result}))
        job.error = storable_text(redact(outcome.detail), 20000) if outcome.state != JobState.SUCCEEDED else ""
        job.current_activity = ("completed" if outcome.state == JobState.SUCCEEDED
                                else storable_text(redact(outcome.reason), 300))
        job.save()
        commits = job.commits.count()
        record_event(
            subjects.job_event(job.id, "completed"),
            {"success": outcome.state == JobState.SUCCEEDED, "commits": commits,
             "files_changed": result.get("files_changed", 0),
             "tests_passed": (result.get("tests") or {}).get("passed", result.get("tests_passed")),
             "tests_total": (result.get("tests") or {}).get("total"),
             "state": outcome.state, "exit_code": outcome.exit_code},
            feature_id=job.feature_id,
        )
        wp = WorkPackage.objects.get(pk=job.wp_id)
        if candidacy_of(job) is not None:
            pass  # one of several candidates: the workflow scores it and moves the WP once one is chosen
        elif wp.state == WPState.DOING:
            if outcome.state == JobState.SUCCEEDED:
                transition_wp(wp, WPState.FOR_REVIEW, actor=f"agent:{job.harness}",
                              metadata={"job_id": job.id, "commits": commits,
                                        "files_changed": result.get("files_changed", 0)})
            else:
                _block_wp(wp, job, outcome, commits)
        elif wp.state == WPState.PLANNED and outcome.state != JobState.SUCCEEDED:
            _block_wp(wp, job, outcome, commits)  # failed before the agent started (setup)
    return job


def _block_wp(wp: WorkPackage, job: DispatchJob, outcome: Outcome, partial_commits: int) -> None:
    actor = SYSTEM_TIMEOUT if outcome.state == JobState.TIMED_OUT else SYSTEM
    metadata = {
        "reason": outcome.reason,
        "timeout_secs": job.timeout_seconds,
        "job_id": job.id,
        "partial_commits": partial_commits,
        "exit_code": outcome.exit_code,
    }
    if outcome.detail:
        metadata["detail"] = storable_text(redact(outcome.detail), 500)
    metadata.update(storable_json(outcome.metadata))
    transition_wp(wp, WPState.BLOCKED, actor=actor, metadata=metadata, evidence_refs=outcome.evidence or None,
                  event_extra={"job_id": job.id, "reason": outcome.reason})


def park_rate_limited(claim: Claim, *, wait_seconds: float | None, detail: str) -> DispatchJob | None:
    """A rate-limited attempt waits instead of failing: the job is queued again, not claimable
    before the reset (``wait_seconds`` the CLI gave, else a capped backoff), without spending an
    attempt (``max_attempts`` grows with it) and with its WP left doing. None when the waits of the
    job are used up (RATE_LIMIT_MAX_WAITS): the caller then fails the job as before."""
    with transaction.atomic():
        job = _lock_held(claim)
        parked = dict((job.result or {}).get("parked") or {})
        waits = int(parked.get("waits") or 0) + 1
        if waits > settings.RATE_LIMIT_MAX_WAITS:
            return None
        backoff = settings.RATE_LIMIT_BACKOFF_SECONDS * 2 ** (waits - 1)
        seconds = min(settings.RATE_LIMIT_MAX_WAIT_SECONDS, wait_seconds if wait_seconds is not None else backoff)
        until = timezone.now() + dt.timedelta(seconds=seconds)
        job.result = {**(job.result or {}), "parked": {
            "waits": waits, "attempt": claim.attempt, "worker": claim.worker, "until": until.isoformat(),
            "seconds": round(seconds, 1), "from_cli": wait_seconds is not None,
            "detail": storable_text(redact(detail), 300)}}
        activity = f"waiting for rate limit until {timezone.localtime(until):%H:%M}"
        append_log(claim, [(timezone.now(), "agileplus", f"Rate limited: {activity} ({round(seconds, 1)} s, "
                            f"{'as the CLI said' if wait_seconds is not None else 'backoff'}), then this session "
                            f"resumes; wait {waits} of at most {settings.RATE_LIMIT_MAX_WAITS}")])
        job.state, job.worker, job.lease_expires_at, job.not_before = JobState.QUEUED, "", None, until
        job.max_attempts += 1
        job.current_activity = activity
        job.save()
        record_event(subjects.job_event(job.id, "rate_limited"),
                     {"wp_id": job.wp.code, "until": until.isoformat(), "seconds": round(seconds, 1),
                      "attempt": claim.attempt}, feature_id=job.feature_id)
        transaction.on_commit(lambda: send_doorbell(job))
    return job


def release_for_retry(claim: Claim, reason: str) -> bool:
    """Hand a job we hold back to the queue (setup failed, worker shutting down), if attempts remain."""
    moved = _held(claim).filter(attempt__lt=F("max_attempts")).update(
        state=JobState.QUEUED, worker="", lease_expires_at=None, current_activity=redact(reason)[:300])
    if moved:
        send_doorbell(DispatchJob.objects.get(pk=claim.job_id))
    return bool(moved)


# A job handed on by a stopping worker waits this long: the stopping worker, still reading its queue
# while its other jobs end, does not take it back.
HAND_ON_DELAY = dt.timedelta(seconds=3)


def hand_on(claim: Claim, reason: str) -> bool:
    """Its worker is stopping (a rolling restart): the job goes back to the queue now, with one
    more attempt allowed (a restart is not the job's failure). False if no longer held."""
    moved = _held(claim).update(state=JobState.QUEUED, worker="", lease_expires_at=None,
                                not_before=timezone.now() + HAND_ON_DELAY, max_attempts=F("max_attempts") + 1,
                                current_activity=redact(reason)[:300])
    if moved:
        send_doorbell(DispatchJob.objects.get(pk=claim.job_id))
    return bool(moved)


def ring_again_later(job_id: str) -> None:
    """A stopping worker takes no new job: the doorbell rings again after ``HAND_ON_DELAY``."""
    if DispatchJob.objects.filter(pk=job_id, state=JobState.QUEUED).update(
            not_before=timezone.now() + HAND_ON_DELAY):
        send_doorbell(DispatchJob.objects.get(pk=job_id))


def cancel_job(job_id: str, *, actor: Actor | str) -> DispatchJob:
    actor = parse_actor(actor)
    job = DispatchJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"no job {job_id}", field="job", fix="`agileplus jobs list` shows job ids")
    if job.state in JobState.FINAL:
        raise IllegalTransition(f"{job_id} already ended ({job.state})", field="job")
    # A queued job is cancelled at once; a running one is stopped by its worker.
    if DispatchJob.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.CANCELLED, cancel_requested=True, finished_at=Now(), error=f"cancelled by {actor}"
    ):
        return DispatchJob.objects.get(pk=job_id)
    DispatchJob.objects.filter(pk=job_id).update(cancel_requested=True)
    return DispatchJob.objects.get(pk=job_id)


