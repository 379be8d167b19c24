"""Review reports and the per-repository merge lock."""

from __future__ import annotations

from django.db import models


class ReviewReport(models.Model):
    feature = models.ForeignKey("features.Feature", on_delete=models.CASCADE, related_name="review_reports")
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="review_reports")
    job = models.ForeignKey("dispatch.DispatchJob", on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="review_reports")
    actor = models.CharField(max_length=120)
    approved = models.BooleanField()
    head_sha = models.CharField(max_length=64, blank=True)
    base_sha = models.CharField(max_length=64, blank=True)
    checks = models.JSONField(default=list)
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.wp} review {'approved' if self.approved else 'changes requested'}"


class MergeLock(models.Model):
    """One row per origin repository; held by one merger at a time, with a lease."""

    repo = models.CharField(max_length=1000, unique=True)
    holder = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.repo} ({self.holder or 'free'})"
