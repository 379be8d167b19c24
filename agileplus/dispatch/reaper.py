"""Attempts whose worker went away: leases that ran out (``reap_expired``, the beat task's: re-queued
with a doorbell, or failed after the last attempt), the attempts a restarted worker held
(``release_lost_attempts``), and worker presence (``worker_name``, ``record_worker_heartbeat``).
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from agileplus.core.actors import SYSTEM_REAPER
from agileplus.dispatch import services
from agileplus.dispatch.claims import Claim, StaleAttempt
from agileplus.dispatch.models import DispatchJob, JobState, Worker
from agileplus.features.services import record_wp_entry


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
                services.send_doorbell(DispatchJob.objects.get(pk=job_id))
        else:
            claim = Claim(job_id, attempt, "reaper")
            try:
                services.finish_job(claim, services.Outcome(
                    JobState.FAILED, None, "lease_expired",
                    "the worker stopped renewing its lease and no attempts are left"), result={})
                failed.append(job_id)
            except StaleAttempt:
                pass
    stale_queue = timezone.now() - dt.timedelta(seconds=max(30, settings.JOB_LEASE_SECONDS))
    rung = []
    for job in DispatchJob.objects.filter(Q(not_before__isnull=True) | Q(not_before__lt=stale_queue),
                                          state=JobState.QUEUED, queued_at__lt=stale_queue,
                                          cancel_requested=False):
        services.send_doorbell(job)
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
                services.send_doorbell(DispatchJob.objects.get(pk=job_id))
                released.append(job_id)
            continue
        try:
            with transaction.atomic():
                _record_lost_attempt(job_id, attempt, "worker_lost", requeued=False, worker=worker,
                                     agents_killed=killed)
                services.finish_job(Claim(job_id, attempt, worker), services.Outcome(
                    JobState.FAILED, None, "worker_lost",
                    f"{worker} restarted without finishing attempt {attempt}, the last one"), result={})
            released.append(job_id)
        except StaleAttempt:
            pass
    return released


def worker_name() -> str:
    """This worker's name: what ``agileplus worker`` set, else the host's."""
    return os.environ.get("AGILEPLUS_WORKER_NAME") or socket.gethostname()


def record_worker_heartbeat(hostname: str, *, harnesses: dict, concurrency: int, active_sessions: int) -> None:
    Worker.objects.update_or_create(
        hostname=hostname,
        defaults={"harnesses": harnesses, "concurrency": concurrency, "active_sessions": active_sessions,
                  "last_heartbeat": timezone.now(), "stopped_at": None},
    )


# --- a worker stopping (a rolling restart): its running jobs are handed on, not left to their lease ---
SHUTTING_DOWN = "shutting-down"


def _marker(worker: str):
    return settings.WORKER_DATA_DIR / worker / SHUTTING_DOWN


def mark_shutting_down(worker: str) -> None:
    """Said by the worker's main process on SIGTERM; its task processes read it at their next tick."""
    marker = _marker(worker)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def shutting_down(worker: str) -> bool:
    return _marker(worker).exists()


def clear_shutting_down(worker: str) -> None:
    """A worker starting under this name is not stopping (its previous life was)."""
    _marker(worker).unlink(missing_ok=True)
