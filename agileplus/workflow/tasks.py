"""The workflow's Celery tasks: beat retries follow-ups not done yet and reconciles candidate
rounds; a finished candidate is scored (best of N), and a round waiting on its grace decided."""

from __future__ import annotations

from agileplus.workflow.candidates import decide, grace_left, reconcile_rounds, score_candidate
from agileplus.workflow.services import retry_follow_ups
from workers.celery import app


@app.task(name="workflow.retry_follow_ups")
def retry() -> list[int]:
    reconcile_rounds()
    return retry_follow_ups()


@app.task(name="workflow.score_candidate", acks_late=True)
def score(job_id: str) -> dict:
    candidate = score_candidate(job_id)
    if candidate is not None and (left := grace_left(candidate.round_id)) is not None:
        # best_of_finished: decided when the first passing candidate's grace runs out (the reaper too)
        decide_round.apply_async(args=[candidate.round_id], queue="agileplus", countdown=left + 0.5)
    return {"scored": bool(candidate and candidate.scored_at)}


@app.task(name="workflow.decide_candidates", acks_late=True)
def decide_round(round_id: int) -> str:
    return decide(round_id).state

