"""Response shapes of the workflow's best of N (``workflow.selectors.round_summary`` builds the dict
they read): a WP's candidate round with every candidate's score card."""

from __future__ import annotations

from rest_framework import serializers as s

from agileplus.api.output.base import Shape, enum, maybe, text


class CandidateCheckOut(Shape):
    name = s.CharField()
    section = s.CharField()
    ok = s.BooleanField()


class ScoreCardOut(Shape):
    passed = s.BooleanField()
    state = s.CharField()
    reason = text()
    checks = CandidateCheckOut(many=True)
    tests_passed = maybe(s.IntegerField)
    tests_total = maybe(s.IntegerField)
    deliverables = s.BooleanField()
    diff_lines = maybe(s.IntegerField)
    files = maybe(s.IntegerField)
    cost_usd = s.CharField()


class CandidateOut(Shape):
    index = s.IntegerField()
    job_id = s.CharField()
    harness = s.CharField()
    branch = s.CharField()
    job_state = s.CharField()
    rank = maybe(s.IntegerField)
    outcome = enum(["", "won", "lost", "stopped", "failed"])
    salvage_ref = text()
    score = ScoreCardOut(allow_null=True)
    cost_usd = s.CharField()


class CandidateCostOut(Shape):
    winner_usd = s.CharField()
    others_usd = s.CharField()


class CandidateRoundOut(Shape):
    """`agileplus candidates FEATURE WP --json`: the WP's latest round of candidates (best of N)."""

    round = s.IntegerField()
    feature = s.CharField()
    wp = s.CharField()
    state = enum(["running", "chosen", "none_passed"])
    quorum = enum(["first_pass", "best_of_finished", "all"])
    grace_seconds = s.IntegerField()
    requested_by = s.CharField()
    created_at = s.DateTimeField()
    decided_at = maybe(s.DateTimeField)
    note = text()
    winner = maybe(s.IntegerField)
    why = text()
    cost = CandidateCostOut()
    candidates = CandidateOut(many=True)
