"""The workflow's Celery tasks: beat retries follow-ups not done yet and reconciles candidate
rounds; a finished candidate is scored (best of N)."""

from __future__ import annotations

from agileplus.workflow.candidates import decide, reconcile_rounds, score_candidate
from agileplus.workflow.services import retry_follow_ups
from workers.celery import app


@app.task(name="workflow.retry_follow_ups")
def retry() -> list[int]:
    reconcile_rounds()
    return retry_follow_ups()


@app.task(name="workflow.score_candidate", acks_late=True)
def score(job_id: str) -> dict:
    candidate = score_candidate(job_id)
    return {"scored": bool(candidate and candidate.scored_at)}


@app.task(name="workflow.decide_candidates", acks_late=True)
def decide_round(round_id: int) -> str:
    """Rung when a best_of_finished round's grace runs out."""
    return decide(round_id).state
