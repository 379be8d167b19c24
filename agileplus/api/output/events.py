"""Response shapes of the event outbox (``/api/events``)."""

from __future__ import annotations

from rest_framework import serializers as s

from agileplus.api.output.base import Shape, maybe


class EventOut(Shape):
    id = s.IntegerField()
    msg_id = s.UUIDField()
    subject = s.CharField()
    payload = s.JSONField()
    created_at = maybe(s.DateTimeField)


class EventPageOut(Shape):
    results = EventOut(many=True)
    next_after = s.IntegerField(help_text="pass as `after` to resume after the last event seen")
    next = s.URLField()
