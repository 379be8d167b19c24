"""Dispatch's Celery tasks, thin: parse, call a service. The names are the wire contract
(queued messages, beat's schedule, docker/ and scripts use them): keep them."""

from __future__ import annotations

from agileplus.core.logs import job_logging
from agileplus.dispatch import runner, sessions
from agileplus.dispatch.candidacy import ended_candidate
from agileplus.dispatch.reaper import reap_expired, record_worker_heartbeat
from workers.celery import app

# The workflow's task, by its name (the wire contract): dispatch does not import the layer above.
SCORE_CANDIDATE = "workflow.score_candidate"


@app.task(name="farm.run_job", acks_late=True)
def run_job(job_id: str) -> str:
    with job_logging(job_id):
        state = runner.run_job(job_id)
        if ended_candidate(job_id):  # best of N: the workflow scores it on a worker (the reaper, if lost)
            app.send_task(SCORE_CANDIDATE, args=[job_id], queue="agileplus")
    return state


@app.task(name="farm.reap")
def reap() -> dict:
    return {**reap_expired(), "orphans_killed": runner.reap_orphaned_agents(),
            "sessions_purged": sessions.purge_sessions()}


@app.task(name="farm.worker_heartbeat")
def worker_heartbeat(hostname: str, harnesses: dict, concurrency: int, active: int) -> None:
    record_worker_heartbeat(hostname, harnesses=harnesses, concurrency=concurrency, active_sessions=active)
