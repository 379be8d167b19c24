"""The tamper-evident audit chain: one hash-linked list of entries per feature."""

from __future__ import annotations

from django.db import models

GENESIS_HASH = "0" * 64


class AppendOnlyError(Exception):
    pass


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):  # noqa: ARG002 - refuse every bulk change
        raise AppendOnlyError("audit entries are append-only: they cannot be updated")

    def delete(self):
        raise AppendOnlyError("audit entries are append-only: they cannot be deleted")


class AuditEntry(models.Model):
    """``seq`` is the entry's id inside its feature's chain (the ``id`` of the exported JSON)."""

    feature = models.ForeignKey("features.Feature", on_delete=models.PROTECT, related_name="audit_entries")
    seq = models.PositiveIntegerField()
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    timestamp = models.DateTimeField()
    actor = models.CharField(max_length=120)
    transition = models.CharField(max_length=120)
    evidence_refs = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["feature", "seq"]
        verbose_name_plural = "audit entries"
        constraints = [
            # Two entries can never claim the same place or the same predecessor: no fork.
            models.UniqueConstraint(fields=["feature", "seq"], name="audit_unique_seq"),
            models.UniqueConstraint(fields=["feature", "prev_hash"], name="audit_unique_prev_hash"),
        ]

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise AppendOnlyError("audit entries are append-only: they cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit entries are append-only: they cannot be deleted")

    def __str__(self) -> str:
        return f"{self.feature_id}#{self.seq} {self.transition}"
