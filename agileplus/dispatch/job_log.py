"""What a running attempt writes besides its state: its log lines (bounded by
``JOB_LOG_MAX_LINES``, with room kept for the worker's own lines), lines reported through the API,
its commits (one event each), its progress (activity, usage, session), the timeout warning and the
refusals (limits, escapes). Everything the agent wrote is redacted and cut to size; every write
presents the attempt's claim (fencing).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agileplus.core.actors import Actor, parse_actor
from agileplus.core.redaction import redact, redact_data
from agileplus.core.text import MAX_LINE_CHARS, storable_json, storable_text
from agileplus.dispatch.claims import Claim, _held, _lock_held
from agileplus.dispatch.models import DispatchJob, JobCommit, JobLogLine
from agileplus.events import subjects
from agileplus.events.services import record_event

LOG_TRUNCATED = "[log truncated: the job log reached its line limit]"


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
