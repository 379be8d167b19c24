"""The event outbox: every event is a row written in its change's transaction.

The relay publishes rows to NATS JetStream (``Nats-Msg-Id`` = ``msg_id``) and
marks them published only after the ack; the SSE stream reads the same rows, so
the row id is the SSE event id and ``Last-Event-ID`` resume has no gaps.
"""

from __future__ import annotations

import uuid

from django.db import models


class Event(models.Model):
    msg_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subject = models.CharField(max_length=300, db_index=True)
    payload = models.JSONField(default=dict)
    feature = models.ForeignKey(
        "features.Feature", on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["published_at", "id"], name="event_unpublished")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"

    def as_message(self) -> dict:
        return {
            "id": self.pk,
            "msg_id": str(self.msg_id),
            "subject": self.subject,
            "payload": self.payload,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }
