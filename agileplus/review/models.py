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


class MergeQueue(models.Model):
    """The merge queue of one origin repository: its adaptive batch size (grows while batches
    pass, shrinks when one fails). Entries are processed only by the holder of the MergeLock."""

    repo = models.CharField(max_length=1000, unique=True)
    batch_size = models.PositiveIntegerField(default=0, help_text="0 = start at batch_max")
    batches_passed = models.PositiveIntegerField(default=0)
    batches_failed = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"merge queue of {self.repo}"


class MergeQueueEntry(models.Model):
    """One approved WP waiting to be merged: tested on main + the WPs ahead of it, merged only
    if that exact tree passes the checks."""

    QUEUED, TESTING, MERGED, EJECTED, CANCELLED = "queued", "testing", "merged", "ejected", "cancelled"
    ACTIVE = (QUEUED, TESTING)
    STATES = [(s, s) for s in (QUEUED, TESTING, MERGED, EJECTED, CANCELLED)]

    repo = models.CharField(max_length=1000, db_index=True)
    feature = models.ForeignKey("features.Feature", on_delete=models.CASCADE, related_name="merge_queue_entries")
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="merge_queue_entries")
    state = models.CharField(max_length=16, choices=STATES, default=QUEUED, db_index=True)
    actor = models.CharField(max_length=120, help_text="who approved the WP; the merge is recorded as theirs")
    send_back = models.BooleanField(default=True, help_text="an ejected WP goes back to its agent (doing)")
    head_sha = models.CharField(max_length=64, blank=True)
    batch = models.CharField(max_length=32, blank=True)
    candidate_sha = models.CharField(max_length=64, blank=True)
    merge_sha = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True, help_text="why the WP was ejected")
    progress = models.JSONField(default=dict, blank=True)
    outcome = models.JSONField(default=dict, blank=True)
    enqueued_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["wp"], condition=models.Q(state__in=["queued", "testing"]),
                                               name="one_active_merge_queue_entry_per_wp")]

    def __str__(self) -> str:
        return f"{self.wp} in the merge queue ({self.state})"


class ReviewRequest(models.Model):
    """A review (or a move to done through the merge queue) asked for by the API or the CLI. The
    checks execute the agent's code, so they run on a review worker, never in the web or CLI
    process: the caller gets this row's id at once and watches it until it is done or failed."""

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    FINAL = (DONE, FAILED)
    STATES = [(s, s) for s in (QUEUED, RUNNING, DONE, FAILED)]
    REVIEW, MOVE = "review", "move"
    KINDS = [(k, k) for k in (REVIEW, MOVE)]

    feature = models.ForeignKey("features.Feature", on_delete=models.CASCADE, related_name="review_requests")
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="review_requests")
    kind = models.CharField(max_length=8, choices=KINDS, default=REVIEW)
    actor = models.CharField(max_length=120)
    apply = models.BooleanField(default=False, help_text="review: approved → done (merge), rejected → doing")
    state = models.CharField(max_length=8, choices=STATES, default=QUEUED, db_index=True)
    worker = models.CharField(max_length=200, blank=True, help_text="the worker that ran it")
    progress = models.CharField(max_length=200, blank=True, help_text="the check running now")
    report = models.ForeignKey(ReviewReport, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    result = models.JSONField(default=dict, blank=True, help_text="move: the transition (to, merge, unblocked)")
    error = models.JSONField(null=True, blank=True, help_text="the DomainError that ended it, as the API renders it")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} request {self.pk} of {self.wp} ({self.state})"
