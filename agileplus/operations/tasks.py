"""Operations' Celery tasks, thin: beat's schedule names them (settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from agileplus.operations import audit_check, retention, webhooks
from workers.celery import app


@app.task(name="operations.deliver_webhooks")
def deliver_webhooks() -> dict:
    return webhooks.run_once()


@app.task(name="operations.purge")
def purge() -> dict:
    """Retention, and the audit chains verified (a failure is an event, and a webhook)."""
    return {**retention.purge(), "audit_failing": audit_check.check_all()}
