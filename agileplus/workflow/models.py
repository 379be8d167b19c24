"""Follow-ups the workflow still owes after a transition (see ``agileplus.workflow.services``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class FollowUp(models.Model):
    """One step owed after a WP transition (review it, redispatch it, queue the ready WPs) or
    after a review run with ``apply`` (merge it or send it back: ``report`` is that review's,
    whose actor the step acts as).

    Written in the transition's (the review report's) own transaction, so a process that dies
    right after the commit cannot lose it; deleted when the step is done; a failed or unfinished
    step is retried by the reaper (``retry_follow_ups``), its last error kept here."""

    REVIEW = "review"
    REDISPATCH = "redispatch"
    QUEUE_READY = "queue_ready"
    AFTER_REVIEW = "after_review"
    KINDS = [(REVIEW, "review"), (REDISPATCH, "redispatch"), (QUEUE_READY, "queue ready WPs"),
             (AFTER_REVIEW, "merge or send back after review")]

    feature = models.ForeignKey("features.Feature", on_delete=models.CASCADE, related_name="follow_ups")
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="follow_ups")
    kind = models.CharField(max_length=20, choices=KINDS)
    report = models.ForeignKey("review.ReviewReport", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} after {self.wp} (attempt {self.attempts})"


class CandidateRound(models.Model):
    """Best of N: several candidate jobs for one WP, one chosen on evidence (``workflow/candidates.py``).

    ``quorum`` says when the choice is made: ``first_pass`` (the first candidate passing every
    check wins, the others stop), ``best_of_finished`` (the best of those finished once the first
    passing one has waited ``grace_seconds``), ``all`` (every candidate finishes first)."""

    RUNNING, CHOSEN, NONE_PASSED = "running", "chosen", "none_passed"
    STATES = [(RUNNING, "running"), (CHOSEN, "chosen"), (NONE_PASSED, "none passed")]
    FIRST_PASS, BEST_OF_FINISHED, ALL = "first_pass", "best_of_finished", "all"
    QUORUMS = (FIRST_PASS, BEST_OF_FINISHED, ALL)

    feature = models.ForeignKey("features.Feature", on_delete=models.CASCADE, related_name="candidate_rounds")
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="candidate_rounds")
    quorum = models.CharField(max_length=20, default=BEST_OF_FINISHED)
    grace_seconds = models.PositiveIntegerField(default=120)
    state = models.CharField(max_length=20, choices=STATES, default=RUNNING, db_index=True)
    requested_by = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=timezone.now)
    first_pass_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)  # the choice carried out (``settle``)
    winner = models.ForeignKey("dispatch.DispatchJob", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    why = models.CharField(max_length=200, blank=True)  # what set the winner above the next best
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.wp} candidates ({self.state})"


class Candidate(models.Model):
    """One candidate of a round: its job, its branch, and its score card once finished."""

    round = models.ForeignKey(CandidateRound, on_delete=models.CASCADE, related_name="candidates")
    index = models.PositiveSmallIntegerField()
    job = models.OneToOneField("dispatch.DispatchJob", on_delete=models.CASCADE, related_name="candidate")
    branch = models.CharField(max_length=300)
    harness = models.CharField(max_length=100)
    # Set when scored: {"passed": bool, "checks": [...], "tests_passed", "tests_total", "deliverables",
    # "diff_lines", "files", "cost_usd", "state"}; ``rank`` 1 is the best.
    score = models.JSONField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    rank = models.PositiveSmallIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, blank=True)  # won | lost | stopped | failed
    salvage_ref = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["round", "index"]
        constraints = [models.UniqueConstraint(fields=["round", "index"], name="candidate_index_once")]

    def __str__(self) -> str:
        return f"{self.round.wp} c{self.index}"
