"""Operations' Celery task, thin: beat's schedule names it (settings.CELERY_BEAT_SCHEDULE). Webhooks are
sent by a thread of beat's own process (``webhooks.start_deliverer``), never behind agent runs."""

from __future__ import annotations

from agileplus.operations import audit_check, retention
from workers.celery import app


@app.task(name="operations.purge")
def purge() -> dict:
    """Retention, and the audit chains verified (a failure is an event, and a webhook)."""
    return {**retention.purge(), "audit_failing": audit_check.check_all()}
