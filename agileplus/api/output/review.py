"""Response shapes of reviews, review requests and the merge queue."""

from __future__ import annotations

from rest_framework import serializers as s

from agileplus.api.output.base import ErrorDetailOut, Shape, enum, text


class ReviewReportOut(Shape):
    # Read from a ``ReviewReport``.
    id = s.IntegerField()
    approved = s.BooleanField()
    actor = s.CharField()
    head_sha = text()
    checks = s.ListField(child=s.JSONField())
    text = text()
    created_at = s.DateTimeField()


class ReviewListOut(Shape):
    results = ReviewReportOut(many=True)


class MergeQueueChecksOut(Shape):
    done = s.IntegerField()
    passed = s.ListField(child=s.CharField())
    failed = s.ListField(child=s.CharField())


class MergeQueueEntryOut(Shape):
    wp = s.CharField()
    feature = s.CharField()
    title = s.CharField()
    state = s.ChoiceField(choices=["queued", "testing", "merged", "ejected", "cancelled"])
    position = s.IntegerField(allow_null=True, help_text="1 = next to be tested; null once settled")
    batch = s.CharField(allow_null=True)
    batch_wps = s.ListField(child=s.CharField(), help_text="the WPs tested together in the current candidate")
    candidate = s.CharField(allow_null=True, help_text="the commit being (or last) tested")
    head = s.CharField(allow_null=True)
    checks = MergeQueueChecksOut()
    note = s.CharField(allow_null=True)
    reason = s.CharField(allow_null=True, help_text="why the WP was ejected")
    merge_sha = s.CharField(allow_null=True, help_text="the main commit it was merged in")
    actor = s.CharField()
    enqueued_at = s.DateTimeField()
    updated_at = s.DateTimeField()


class MergeQueueOut(Shape):
    repo = s.CharField()
    project = s.CharField()
    main_branch = s.CharField()
    enabled = s.BooleanField()
    batch_max = s.IntegerField()
    bisect = s.BooleanField()
    batch_size = s.IntegerField(help_text="the adaptive size of the next batch")
    entries = MergeQueueEntryOut(many=True)
    recent = MergeQueueEntryOut(many=True)


class ReviewOut(Shape):
    # Read from a ``ReviewReport``.
    id = s.IntegerField()
    approved = s.BooleanField()
    checks = s.ListField(child=s.JSONField())
    text = s.CharField()


class ReviewRequestOut(Shape):
    """A review, or a move to done through the merge queue, run on a review worker (never in the
    web process): answered 202 at once; ``GET url`` until ``state`` is done or failed."""

    id = s.IntegerField()
    kind = enum(["review", "move"])
    feature = s.CharField()
    wp = s.CharField()
    state = enum(["queued", "running", "done", "failed"])
    actor = s.CharField()
    apply = s.BooleanField()
    worker = s.CharField(allow_null=True, help_text="the worker that ran it")
    url = s.CharField(help_text="where to watch it: GET until state is done or failed")
    report = ReviewOut(allow_null=True, help_text="review: the stored report once done")
    result = s.JSONField(allow_null=True, help_text="move: the transition once done (as the move answered before)")
    error = ErrorDetailOut(allow_null=True, help_text="failed: why")
    created_at = s.DateTimeField()
    started_at = s.DateTimeField(allow_null=True)
    finished_at = s.DateTimeField(allow_null=True)
