"""Writing events to the outbox. Call inside the transaction of the change they describe."""

from __future__ import annotations

from django.apps import apps
from django.db import transaction

from agileplus.core.db import advisory_xact_lock, is_postgres
from agileplus.core.redaction import redact_data
from agileplus.events.models import Event

# Serializes outbox inserts until commit on PostgreSQL, so event ids become
# visible in id order: a reader resuming "after id N" can never skip a row that
# commits later with a smaller id.
OUTBOX_LOCK_KEY = 0x0A61_1E05


def record_event(subject: str, payload: dict, *, feature_id: int | None = None) -> Event:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must run inside the transaction of the change it describes")
    if feature_id is not None and is_postgres():
        # One lock order for every writer: the feature's row, then the outbox. The Event row's
        # foreign key takes a share lock on the feature row; taken after the outbox lock, it
        # deadlocks with a transition that holds the feature row and waits for the outbox.
        list(apps.get_model("features", "Feature").objects.select_for_update().filter(pk=feature_id).values_list("pk"))
    advisory_xact_lock(OUTBOX_LOCK_KEY)
    # Payloads carry agent text (commit messages, paths): no secret this process holds leaves in one.
    return Event.objects.create(subject=subject, payload=redact_data(payload), feature_id=feature_id)
