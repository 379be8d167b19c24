"""A claim on a job: which attempt a worker holds (``Claim``, the fencing token every later write
presents), the job while it is still held (``held_job``; ``_lock_held`` locks it or raises
``StaleAttempt``). Claiming itself is ``services.claim_job``; these are what every write checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from agileplus.core.errors import Conflict
from agileplus.dispatch.models import DispatchJob, JobState


class StaleAttempt(Conflict):
    """A worker wrote for an attempt it no longer holds (its lease expired and the job moved on)."""

    code = "stale_attempt"


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempt: int
    worker: str


def _held(claim: Claim):
    return DispatchJob.objects.filter(pk=claim.job_id, attempt=claim.attempt, state__in=JobState.HELD)


def held_job(claim: Claim) -> DispatchJob | None:
    """The job while ``claim`` still holds it (its attempt, claimed or running), else None."""
    return _held(claim).first()


def _lock_held(claim: Claim) -> DispatchJob:
    # NO KEY UPDATE: the job, WP and feature rows are changed, never their keys; so rows that only
    # reference them (the gateway ledger's, written from another thread meanwhile) are not held up,
    # nor deadlock with this lock taken in another order.
    job = (DispatchJob.objects.select_for_update(no_key=True).select_related("wp", "feature")
           .filter(pk=claim.job_id).first())
    if job is None or job.attempt != claim.attempt or job.state not in JobState.HELD:
        raise StaleAttempt(
            f"attempt {claim.attempt} of {claim.job_id} is no longer held by {claim.worker}",
            field="attempt",
            fix="the job was re-queued or finished elsewhere; drop this result",
        )
    return job
