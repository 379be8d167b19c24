"""The prompt in the example's words: the review's checks under GOVERNANCE CONSTRAINTS, and the
time budget as "You have 1 hour. Let's go!"."""

from __future__ import annotations

import pytest

from agileplus.dispatch.prompt import build_prompt, time_budget
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("seconds", "words"), [
    (3600, "You have 1 hour. Let's go!"),
    (1800, "You have 30 minutes. Let's go!"),
    (5400, "You have 1 hour 30 minutes. Let's go!"),
    (7200, "You have 2 hours. Let's go!"),
    (30, "You have 1 minute. Let's go!"),
])
def test_the_time_budget_is_said_in_the_examples_words(seconds, words):
    assert time_budget(seconds) == words


def test_the_review_checks_are_listed_under_governance_constraints():
    feature, (wp, _) = make_feature_with_wps(2)
    feature.project.config = {"review": {"checks": [
        {"name": "tests", "command": "cargo test", "parser": "cargo", "coverage_threshold": 85},
        {"name": "clippy", "command": "cargo clippy -- -D warnings"},
        {"name": "function_length", "max_lines": 50}, {"name": "governance"}]}}
    feature.project.save()

    text = build_prompt(feature, wp, timeout_seconds=3600).text
    governance = text[text.index("## GOVERNANCE CONSTRAINTS"):text.index("Commit Convention")].splitlines()

    assert governance[1:5] == ["✓ All tests must pass: cargo test", "✓ Test coverage: >= 85%",
                               "✓ All code must pass: cargo clippy -- -D warnings",
                               "✓ Function length: < 50 lines preferred"]
    assert text.rstrip().endswith("You have 1 hour. Let's go!")


def test_the_commit_format_names_the_wp_as_the_example_does():
    feature, (wp, _) = make_feature_with_wps(2)

    text = build_prompt(feature, wp, timeout_seconds=3600).text

    assert f"Format: feat({wp.code}): <description>" in text and "{wp}" not in text
