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
    # The order, best first: passed, share of tests passing, deliverables, smaller diff, fewer files, lower cost.
    passed = s.BooleanField(help_text="every check passed on main merged with the branch (required to win)")
    state = s.CharField(help_text="the candidate job's state when scored")
    reason = text(help_text="why a candidate that did not finish has no checks (its last activity)")
    checks = CandidateCheckOut(many=True)
    tests_passed = maybe(s.IntegerField)
    tests_total = maybe(s.IntegerField, help_text="null: no test check ran")
    deliverables = s.BooleanField(help_text="every deliverable the WP names is there")
    diff_lines = maybe(s.IntegerField, help_text="lines changed against main")
    files = maybe(s.IntegerField, help_text="files changed against main")
    cost_usd = s.CharField(help_text="decimal string: what the candidate's job spent")


class CandidateOut(Shape):
    index = s.IntegerField(help_text="1, 2, …: the candidate's place in the round")
    job_id = s.CharField()
    harness = s.CharField()
    branch = s.CharField(help_text="the candidate's own branch on the origin")
    job_state = s.CharField()
    rank = maybe(s.IntegerField, help_text="1 is the best; null until scored")
    outcome = enum(["", "won", "lost", "stopped", "failed"], help_text="empty while the round runs")
    salvage_ref = text(help_text="where a losing candidate's work is kept on the origin (salvage/…)")
    score = ScoreCardOut(allow_null=True)
    cost_usd = s.CharField()


class CandidateCostOut(Shape):
    winner_usd = s.CharField(help_text="decimal string: the winning candidate's spend")
    others_usd = s.CharField(help_text="decimal string: the spend on every other candidate")


class CandidateRoundOut(Shape):
    """`agileplus candidates FEATURE WP --json`: the WP's latest round of candidates (best of N)."""

    round = s.IntegerField(help_text="the round's id")
    feature = s.CharField()
    wp = s.CharField()
    state = enum(["running", "chosen", "none_passed"])
    quorum = enum(["first_pass", "best_of_finished", "all"],
                  help_text="when the choice is made: the first candidate passing every check, the best of "
                            "those finished once the first passing one waited grace_seconds, or all finished")
    grace_seconds = s.IntegerField()
    requested_by = s.CharField()
    created_at = s.DateTimeField()
    decided_at = maybe(s.DateTimeField)
    note = text()
    winner = maybe(s.IntegerField, help_text="the winning candidate's index; null until chosen")
    why = text(help_text="what set the winner above the next best (e.g. more tests passing)")
    cost = CandidateCostOut()
    candidates = CandidateOut(many=True)
