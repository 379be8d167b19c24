"""Dispatch jobs: enqueue, claim, lease, fence, report, finish, reap.

The database is the record of truth; the broker message carries only the job id.
A claim is a conditional UPDATE (one winner however often the task is delivered);
``attempt`` is the fencing token every later write must present; leases use the
database clock, so workers' clocks do not matter.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import string
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Max, Q
from django.db.models.functions import Now
from django.utils import timezone

from agileplus.core.actors import SYSTEM, SYSTEM_REAPER, SYSTEM_TIMEOUT, Actor, parse_actor
from agileplus.core.errors import BlockedByDependency, Conflict, DomainError, IllegalTransition, NotFound
from agileplus.core.redaction import redact, redact_data
from agileplus.core.text import MAX_LINE_CHARS, storable_json, storable_text
from agileplus.dispatch.models import DispatchJob, JobCommit, JobLogLine, JobState, Worker
from agileplus.events import subjects
from agileplus.events.services import record_event
from agileplus.features.lifecycles import WPState
from agileplus.features.models import WorkPackage
from agileplus.features.project_config import budget_config
from agileplus.features.services import blocking_dependencies, record_wp_entry, transition_wp
from harnesses.base import HarnessError
from harnesses.registry import get_adapter

DEFAULT_HARNESS = "command"
DEFAULT_TIMEOUT = 3600
DEFAULT_RETRIES = 2
LOG_TRUNCATED = "[log truncated: the job log reached its line limit]"


class StaleAttempt(Conflict):
    """A worker wrote for an attempt it no longer holds (its lease expired and the job moved on)."""

    code = "stale_attempt"


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempt: int
    worker: str


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
) -> DispatchJob:
    """Queue one agent run for a ready WP. The WP moves to doing when the agent starts."""

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
        active = wp.jobs.filter(state__in=JobState.ACTIVE).first()
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
            result={"notes": notes or [], **({"replay_of": replay_of} if replay_of else {})},
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
    """Ring the broker: only the job id travels; the queue is the harness's. The one place
    dispatch reaches its task layer (which imports this module, hence the late import)."""
    from agileplus.dispatch.tasks import run_job  # late: the doorbell; tasks import this module

    # A parked job's doorbell rings at its time (the broker holds it): the one mechanism that
    # re-sends it; the reaper's re-ring of old queued jobs is the safety net once that time passed.
    eta = job.not_before if job.not_before and job.not_before > timezone.now() else None
    run_job.apply_async(args=[job.id], queue=queue_for(job.harness), **({"eta": eta} if eta else {}))


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


def _held(claim: Claim):
    return DispatchJob.objects.filter(pk=claim.job_id, attempt=claim.attempt, state__in=JobState.HELD)


def held_job(claim: Claim) -> DispatchJob | None:
    """The job while ``claim`` still holds it (its attempt, claimed or running), else None."""
    return _held(claim).first()


def _lock_held(claim: Claim) -> DispatchJob:
    job = DispatchJob.objects.select_for_update().select_related("wp", "feature").filter(pk=claim.job_id).first()
    if job is None or job.attempt != claim.attempt or job.state not in JobState.HELD:
        raise StaleAttempt(
            f"attempt {claim.attempt} of {claim.job_id} is no longer held by {claim.worker}",
            field="attempt",
            fix="the job was re-queued or finished elsewhere; drop this result",
        )
    return job


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


def log_reserve() -> int:
    """Lines of the cap kept for the worker's own lines (stream ``agileplus``: stopping, commits,
    the outcome), so an agent that floods its output cannot push them out of the log."""
    return min(200, settings.JOB_LOG_MAX_LINES // 10)


def append_log(claim: Claim, lines: list[tuple[dt.datetime, str, str]]) -> int:
    """Append timestamped lines; bounded by settings.JOB_LOG_MAX_LINES, of which the agent's
    output may fill all but ``log_reserve()``. Returns lines written."""
    if not lines:
        return 0
    cap = settings.JOB_LOG_MAX_LINES
    agent_cap = cap - log_reserve()
    with transaction.atomic():
        _lock_held(claim)
        last = JobLogLine.objects.filter(job_id=claim.job_id).aggregate(m=Max("seq"))["m"] or 0
        kept: list[tuple[dt.datetime, str, str]] = []
        marked = None  # whether the truncation marker is in the log (looked up on the first drop)
        for ts, stream, text in lines:
            seq = last + len(kept) + 1
            if seq <= (cap if stream == "agileplus" else agent_cap):
                kept.append((ts, stream, text))
                continue
            if marked is None:
                marked = JobLogLine.objects.filter(job_id=claim.job_id, line=LOG_TRUNCATED).exists()
            if not marked and seq <= cap:
                kept.append((ts, "agileplus", LOG_TRUNCATED))  # once: where the agent's output stops
                marked = True
        rows = [JobLogLine(job_id=claim.job_id, attempt=claim.attempt, seq=last + i + 1, timestamp=ts, stream=stream,
                           line=storable_text(redact(text), MAX_LINE_CHARS))
                for i, (ts, stream, text) in enumerate(kept)]
        JobLogLine.objects.bulk_create(rows)
    return len(rows)


def append_report(job: DispatchJob, lines: list[str], *, actor: Actor | str) -> int:
    """Lines an agent (or a person) reports on a job through the API, after the worker's own log."""
    actor = parse_actor(actor)
    with transaction.atomic():
        job = DispatchJob.objects.select_for_update().get(pk=job.pk)
        last = JobLogLine.objects.filter(job_id=job.pk).aggregate(m=Max("seq"))["m"] or 0
        room = max(0, settings.JOB_LOG_MAX_LINES - last)
        now = timezone.now()
        rows = [JobLogLine(job_id=job.pk, attempt=job.attempt, seq=last + i + 1, timestamp=now, stream="report",
                           line=storable_text(redact(f"[{actor}] {text}"), MAX_LINE_CHARS))
                for i, text in enumerate(lines[:room])]
        JobLogLine.objects.bulk_create(rows)
    return len(rows)


def report_commit(claim: Claim, *, sha: str, message: str, files: list[str]) -> bool:
    """Record one new commit and emit its event. False if it was already reported.
    The message and paths are the agent's: stored redacted, without NUL, cut to size."""
    message, files = storable_text(redact(message), 20000), [storable_text(redact(f), 4096) for f in files]
    with transaction.atomic():
        job = _lock_held(claim)
        if JobCommit.objects.filter(job_id=job.id, sha=sha).exists():
            return False
        JobCommit.objects.create(job=job, attempt=claim.attempt, sha=sha, message=message, files=files,
                                 committed_at=timezone.now())
        record_event(
            subjects.job_event(job.id, "commit"),
            {"sha": sha[:7], "full_sha": sha, "message": message.splitlines()[0] if message else "",
             "files": files},
            feature_id=job.feature_id,
        )
    return True


def update_progress(claim: Claim, **fields) -> None:
    """current_activity, usage, session_id… (fenced, no event: the log carries detail)."""
    if fields:
        # Every value here comes from the agent's stream: untrusted (secrets, NUL bytes, endless text).
        fields = {name: storable_text(value, 300 if name == "current_activity" else 2000)
                  if isinstance(value, str) else storable_json(value)
                  for name, value in ((n, redact_data(v)) for n, v in fields.items())}
        _held(claim).update(**fields)


def record_timeout_warning(claim: Claim, seconds_left: float) -> None:
    """``agileplus.agent.job.<id>.timeout_warning``: the agent is stopped in ``seconds_left``."""
    with transaction.atomic():
        job = _lock_held(claim)
        record_event(subjects.job_event(job.id, "timeout_warning"),
                     {"wp_id": job.wp.code, "seconds_left": round(seconds_left), "timeout_secs": job.timeout_seconds,
                      "attempt": claim.attempt}, feature_id=job.feature_id)


def record_refusal(claim: Claim, name: str, reason: str, detail: str) -> None:
    """``agileplus.agent.job.<id>.<name>``: the job went over a limit (``limit_exceeded``, reason
    memory_limit | disk_limit) or the sandbox refused it an escape (``escape_refused``)."""
    with transaction.atomic():
        job = _lock_held(claim)
        record_event(subjects.job_event(job.id, name),
                     {"wp_id": job.wp.code, "reason": reason, "detail": storable_text(redact(detail), 500),
                      "attempt": claim.attempt}, feature_id=job.feature_id)


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
        if wp.state == WPState.DOING:
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


def reap_expired() -> dict:
    """Re-queue jobs whose lease ran out (worker died or hung), up to max_attempts;
    fail the rest and block their WP. Re-ring queued jobs nobody claimed."""
    requeued, failed = [], []
    expired = DispatchJob.objects.filter(state__in=JobState.HELD, lease_expires_at__lt=Now())
    for job_id, attempt, max_attempts, worker in expired.values_list("id", "attempt", "max_attempts", "worker"):
        if attempt < max_attempts:
            with transaction.atomic():  # the re-queue and its audit entry, together
                still_expired = DispatchJob.objects.filter(pk=job_id, attempt=attempt, state__in=JobState.HELD,
                                                           lease_expires_at__lt=Now())
                # A row locked by a connection that went silent mid-transaction is left for a later
                # reap (the database ends that session: AGILEPLUS_DB_DEAD_PEER_SECONDS) instead of
                # stalling this one, and the worker slot it runs in, behind it.
                free = list(still_expired.select_for_update(skip_locked=True).values_list("pk", flat=True))
                moved = free and still_expired.update(state=JobState.QUEUED, worker="", lease_expires_at=None,
                                                      current_activity="re-queued: lease expired")
                if moved:
                    _record_lost_attempt(job_id, attempt, "lease_expired", requeued=True, worker=worker)
            if moved:
                requeued.append(job_id)
                send_doorbell(DispatchJob.objects.get(pk=job_id))
        else:
            claim = Claim(job_id, attempt, "reaper")
            try:
                finish_job(claim, Outcome(JobState.FAILED, None, "lease_expired",
                                          "the worker stopped renewing its lease and no attempts are left"),
                           result={})
                failed.append(job_id)
            except StaleAttempt:
                pass
    stale_queue = timezone.now() - dt.timedelta(seconds=max(30, settings.JOB_LEASE_SECONDS))
    rung = []
    for job in DispatchJob.objects.filter(Q(not_before__isnull=True) | Q(not_before__lt=stale_queue),
                                          state=JobState.QUEUED, queued_at__lt=stale_queue,
                                          cancel_requested=False):
        send_doorbell(job)
        rung.append(job.id)
    return {"requeued": requeued, "failed": failed, "rung": rung}


def _record_lost_attempt(job_id: str, attempt: int, reason: str, *, requeued: bool, worker: str = "",
                         agents_killed: list[int] | None = None) -> None:
    """The audit chain's record of an attempt that ended without its worker (actor system:reaper)."""
    job = DispatchJob.objects.select_related("wp").get(pk=job_id)
    record_wp_entry(job.wp, actor=SYSTEM_REAPER, transition=f"{job.wp.code}:attempt_lost", metadata={
        "reason": reason, "job_id": job_id, "attempt": attempt, "worker": worker or job.worker,
        "requeued": requeued, "agents_killed": agents_killed or []})


def release_lost_attempts(worker: str, *, agents_killed: dict[str, list[int]] | None = None) -> list[str]:
    """Called by a worker as it starts, before it takes any job: whatever is on record as held
    by its name was lost with its previous life (kill -9, a crash, a power cut). Each attempt
    gets an audit entry (system:reaper) and is queued again, or fails when none is left.
    ``agents_killed`` maps job id → pids of its agent processes the restart ended."""
    released = []
    held = DispatchJob.objects.filter(worker=worker, state__in=JobState.HELD)
    for job_id, attempt, max_attempts in held.values_list("id", "attempt", "max_attempts"):
        killed = (agents_killed or {}).get(job_id, [])
        if attempt < max_attempts:
            with transaction.atomic():  # the release and its audit entry, together
                moved = DispatchJob.objects.filter(pk=job_id, attempt=attempt, worker=worker,
                                                   state__in=JobState.HELD).update(
                    state=JobState.QUEUED, worker="", lease_expires_at=None,
                    current_activity=f"re-queued: {worker} restarted without finishing attempt {attempt}")
                if moved:
                    _record_lost_attempt(job_id, attempt, "worker_lost", requeued=True, worker=worker,
                                         agents_killed=killed)
            if moved:
                send_doorbell(DispatchJob.objects.get(pk=job_id))
                released.append(job_id)
            continue
        try:
            with transaction.atomic():
                _record_lost_attempt(job_id, attempt, "worker_lost", requeued=False, worker=worker,
                                     agents_killed=killed)
                finish_job(Claim(job_id, attempt, worker),
                           Outcome(JobState.FAILED, None, "worker_lost",
                                   f"{worker} restarted without finishing attempt {attempt}, the last one"), result={})
            released.append(job_id)
        except StaleAttempt:
            pass
    return released


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


def worker_name() -> str:
    """This worker's name: what ``agileplus worker`` set, else the host's."""
    return os.environ.get("AGILEPLUS_WORKER_NAME") or socket.gethostname()


def record_worker_heartbeat(hostname: str, *, harnesses: dict, concurrency: int, active_sessions: int) -> None:
    Worker.objects.update_or_create(
        hostname=hostname,
        defaults={"harnesses": harnesses, "concurrency": concurrency, "active_sessions": active_sessions,
                  "last_heartbeat": timezone.now(), "stopped_at": None},
    )
