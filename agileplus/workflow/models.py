"""Follow-ups the workflow still owes after a transition (see ``agileplus.workflow.services``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class FollowUp(models.Model):
    """One step owed after a WP transition (review it, redispatch it, queue the ready WPs).

    Written in the transition's own transaction, so a process that dies right after the commit
    cannot lose it; deleted when the step is done; a failed or unfinished step is retried by
    the reaper (``retry_follow_ups``), its last error kept here."""

    REVIEW = "review"
    REDISPATCH = "redispatch"
    QUEUE_READY = "queue_ready"
    KINDS = [(REVIEW, "review"), (REDISPATCH, "redispatch"), (QUEUE_READY, "queue ready WPs")]

    feature = models.ForeignKey("features.Feature", on_delete=models.CASCADE, related_name="follow_ups")
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="follow_ups")
    kind = models.CharField(max_length=20, choices=KINDS)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} after {self.wp} (attempt {self.attempts})"
