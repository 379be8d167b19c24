"""The workflow's table: which follow-up each WP transition owes under auto-dispatch."""

import pytest

from agileplus.workflow.services import follow_ups_for


@pytest.mark.parametrize(("source", "target", "unblocked", "owed"), [
    ("doing", "for_review", False, ["review"]),
    ("for_review", "doing", False, ["redispatch"]),
    ("for_review", "done", True, ["queue_ready"]),
    ("for_review", "done", False, ["queue_ready"]),
    ("doing", "blocked", False, []),
    ("blocked", "planned", False, []),
    ("planned", "doing", False, []),
])
def test_each_transition_owes_its_follow_up(source, target, unblocked, owed):
    assert follow_ups_for(source, target, unblocked) == owed
