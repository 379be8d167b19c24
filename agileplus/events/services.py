"""Writing events to the outbox. Call inside the transaction of the change they describe."""

from __future__ import annotations

from django.db import transaction

from agileplus.core.db import advisory_xact_lock
from agileplus.dispatch.secrets import redact_data
from agileplus.events.models import Event

# Serializes outbox inserts until commit on PostgreSQL, so event ids become
# visible in id order: a reader resuming "after id N" can never skip a row that
# commits later with a smaller id.
OUTBOX_LOCK_KEY = 0x0A61_1E05


def record_event(subject: str, payload: dict, *, feature_id: int | None = None) -> Event:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must run inside the transaction of the change it describes")
    advisory_xact_lock(OUTBOX_LOCK_KEY)
    # Payloads carry agent text (commit messages, paths): no secret this process holds leaves in one.
    return Event.objects.create(subject=subject, payload=redact_data(payload), feature_id=feature_id)
