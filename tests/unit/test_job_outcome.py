"""What an agent's exit, or the reason it was stopped, means for its job (runner.outcome_of)."""

import pytest

from agileplus.dispatch.models import JobState
from agileplus.dispatch.runner import outcome_of
from harnesses.process import ProcessResult, StopReason


def test_a_clean_exit_succeeds():
    assert outcome_of(ProcessResult(exit_code=0)).state == JobState.SUCCEEDED


def test_a_nonzero_exit_fails_as_agent_failed():
    outcome = outcome_of(ProcessResult(exit_code=3))
    assert (outcome.state, outcome.reason) == (JobState.FAILED, "agent_failed")


def test_a_timeout_ended_by_sigkill_says_so():
    outcome = outcome_of(ProcessResult(exit_code=-9, stopped=StopReason("timeout"), killed=True))
    assert outcome.state == JobState.TIMED_OUT
    assert "SIGKILL" in outcome.detail


@pytest.mark.parametrize(("kind", "state", "reason"), [
    ("cancelled", JobState.CANCELLED, "cancelled"),
    ("rate_limited", JobState.FAILED, "rate_limited"),
    ("budget", JobState.FAILED, "budget_exceeded"),
    ("turns", JobState.FAILED, "agent_turns"),
    ("idle", JobState.FAILED, "agent_idle"),
    ("memory_limit", JobState.FAILED, "memory_limit"),
    ("disk_limit", JobState.FAILED, "disk_limit"),
])
def test_each_stop_reason_names_its_outcome(kind, state, reason):
    outcome = outcome_of(ProcessResult(exit_code=-15, stopped=StopReason(kind, "why")))
    assert (outcome.state, outcome.reason, outcome.detail) == (state, reason, "why")
