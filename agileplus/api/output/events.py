"""Response shapes of the event outbox (``/api/events``)."""

from __future__ import annotations

from rest_framework import serializers as s

from agileplus.api.output.base import Shape, maybe


class EventOut(Shape):
    id = s.IntegerField(help_text="the outbox's order: pass the last one seen as `after`")
    msg_id = s.UUIDField(help_text="published as Nats-Msg-Id: a consumer drops a repeat by it")
    subject = s.CharField(help_text="the NATS subject, e.g. agileplus.feature.003-auth.wp.WP02.state.changed")
    payload = s.JSONField(help_text="the event's data, secrets redacted")
    created_at = maybe(s.DateTimeField)


class EventPageOut(Shape):
    results = EventOut(many=True)
    next_after = s.IntegerField(help_text="pass as `after` to resume after the last event seen")
    next = s.URLField()
