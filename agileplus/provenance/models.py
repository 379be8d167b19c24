"""Signed attestations of main moves, as stored beside their git notes (``provenance export``)."""

from __future__ import annotations

from django.db import models


class Attestation(models.Model):
    """One main move: main went ``from_sha`` → ``commit_sha``; ``envelope`` is the DSSE envelope
    also written as the git note of each first-parent commit the move added."""

    repo = models.CharField(max_length=1000)
    commit_sha = models.CharField(max_length=64, db_index=True)
    from_sha = models.CharField(max_length=64)
    key_id = models.CharField(max_length=64)
    envelope = models.JSONField()
    noted = models.BooleanField(default=False, help_text="the git notes reached the origin")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["repo", "commit_sha"], name="attestation_unique_move")]

    def __str__(self) -> str:
        return f"{self.commit_sha[:12]} ({self.repo})"
