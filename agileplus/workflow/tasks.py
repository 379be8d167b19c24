"""The workflow's Celery task: beat runs it to retry follow-ups not done yet."""

from __future__ import annotations

from agileplus.workflow.services import retry_follow_ups
from workers.celery import app


@app.task(name="workflow.retry_follow_ups")
def retry() -> list[int]:
    return retry_follow_ups()
