"""Dispatch's Celery tasks, thin: parse, call a service. The names are the wire contract
(queued messages, beat's schedule, docker/ and scripts use them): keep them."""

from __future__ import annotations

from agileplus.dispatch import runner, sessions
from agileplus.dispatch.reaper import reap_expired, record_worker_heartbeat
from workers.celery import app


@app.task(name="farm.run_job", acks_late=True)
def run_job(job_id: str) -> str:
    return runner.run_job(job_id)


@app.task(name="farm.reap")
def reap() -> dict:
    return {**reap_expired(), "orphans_killed": runner.reap_orphaned_agents(),
            "sessions_purged": sessions.purge_sessions()}


@app.task(name="farm.worker_heartbeat")
def worker_heartbeat(hostname: str, harnesses: dict, concurrency: int, active: int) -> None:
    record_worker_heartbeat(hostname, harnesses=harnesses, concurrency=concurrency, active_sessions=active)
