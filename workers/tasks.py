"""Thin Celery tasks: parse, call a service."""

from __future__ import annotations

from workers.celery import app


@app.task(name="farm.run_job", acks_late=True)
def run_job(job_id: str) -> str:
    from agileplus.dispatch.runner import run_job as run

    return run(job_id)


@app.task(name="farm.reap")
def reap() -> dict:
    from agileplus.dispatch.runner import reap_orphaned_agents
    from agileplus.dispatch.services import reap_expired
    from agileplus.workflow.services import retry_follow_ups

    return {**reap_expired(), "orphans_killed": reap_orphaned_agents(), "follow_ups": retry_follow_ups()}


@app.task(name="farm.worker_heartbeat")
def worker_heartbeat(hostname: str, harnesses: dict, concurrency: int, active: int) -> None:
    from agileplus.dispatch.services import record_worker_heartbeat

    record_worker_heartbeat(hostname, harnesses=harnesses, concurrency=concurrency, active_sessions=active)
