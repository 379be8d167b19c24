"""Webhook endpoints, their delivery log, and the outbox cursor the fan-out reads from."""

from __future__ import annotations

from django.db import models


class WebhookEndpoint(models.Model):
    """A receiver told about the subjects it chose (``notifications.SUBJECTS``). The secret signs
    every body (HMAC-SHA256); it is shown once, when the endpoint is added."""

    JSON, SLACK = "json", "slack"
    FORMATS = [(JSON, "JSON (signed)"), (SLACK, "Slack-compatible ({\"text\": …})")]

    name = models.SlugField(max_length=100, unique=True)
    url = models.CharField(max_length=2000, help_text="http(s); checked by webhooks.check_destination")
    secret = models.CharField(max_length=128)
    subjects = models.JSONField(default=list, help_text="notification subjects, e.g. [\"wp.blocked\"]")
    format = models.CharField(max_length=10, choices=FORMATS, default=JSON)
    enabled = models.BooleanField(default=True)
    # Only events after this outbox id are sent: an endpoint hears of what happens once it exists.
    after_event_id = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    """One notification to one endpoint: its body (rendered once, so purging events loses
    nothing), each attempt's outcome, and the time of the next one."""

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
    STATES = [(s, s) for s in (PENDING, DELIVERED, FAILED)]

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.SET_NULL, null=True, related_name="deliveries")
    endpoint_name = models.CharField(max_length=100)
    event_id = models.BigIntegerField(null=True, blank=True, help_text="the outbox row; none for a test")
    subject = models.CharField(max_length=40)
    body = models.TextField()
    state = models.CharField(max_length=10, choices=STATES, default=PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    event_created_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="one_delivery_per_event")]

    def __str__(self) -> str:
        return f"{self.subject} → {self.endpoint_name} ({self.state})"


class OutboxCursor(models.Model):
    """How far the webhook fan-out has read the event outbox (one row)."""

    name = models.CharField(max_length=40, unique=True)
    last_event_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at #{self.last_event_id}"
