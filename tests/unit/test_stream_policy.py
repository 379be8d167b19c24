"""The stream policy: which agent events stop a run (budget, turn cap, rate limit), on its own."""

from decimal import Decimal

import pytest

from agileplus.dispatch.costs import Allowance
from agileplus.dispatch.stream_policy import StreamPolicy, rate_limit_wait
from harnesses.base import AgentEvent, Usage


def usage_event(cost: str | None = None, turns: int | None = None, **tokens) -> AgentEvent:
    return AgentEvent("usage", usage=Usage(cost_usd=None if cost is None else Decimal(cost), turns=turns, **tokens))


def test_usage_keeps_the_latest_cumulative_figures_and_ignores_missing_ones():
    policy = StreamPolicy("claude-code")
    policy.observe(usage_event("0.10", turns=2, input_tokens=100))
    policy.observe(usage_event(None, turns=None, input_tokens=250))
    assert policy.usage["input_tokens"] == 250
    assert policy.usage["cost_usd"] == "0.10"
    assert policy.usage["turns"] == 2


def test_a_cost_over_the_allowance_stops_the_run_naming_the_binding_budget():
    policy = StreamPolicy("claude-code", Allowance(Decimal("0.50"), "wp_usd"))
    stop = policy.observe(usage_event("0.51"))
    assert stop.kind == "budget"
    assert "wp_usd" in stop.detail and "0.51" in stop.detail


def test_a_cost_equal_to_the_allowance_does_not_stop_the_run():
    policy = StreamPolicy("claude-code", Allowance(Decimal("0.50"), "job_usd"))
    assert policy.observe(usage_event("0.50")) is None


def test_without_a_budget_no_cost_stops_the_run():
    assert StreamPolicy("claude-code").observe(usage_event("1000")) is None


def test_turns_over_max_turns_stop_the_run():
    policy = StreamPolicy("codex", max_turns=3)
    assert policy.observe(usage_event(turns=3)) is None
    stop = policy.observe(usage_event(turns=4))
    assert stop.kind == "turns"
    assert "max_turns 3" in stop.detail


def test_max_turns_given_as_text_in_config_is_compared_as_a_number():
    policy = StreamPolicy.from_config("codex", {"max_turns": "10"}, Allowance(None))
    assert policy.observe(usage_event(turns=9)) is None
    assert policy.observe(usage_event(turns=11)).kind == "turns"


def test_the_budget_stop_is_reported_when_budget_and_turns_are_both_crossed():
    policy = StreamPolicy("codex", Allowance(Decimal("1"), "job_usd"), max_turns=1)
    assert policy.observe(usage_event("2", turns=5)).kind == "budget"


def test_an_error_event_saying_rate_limit_stops_the_run_as_rate_limited():
    stop = StreamPolicy("gemini").observe(AgentEvent("error", text="429 Too Many Requests", is_error=True))
    assert stop.kind == "rate_limited"
    assert stop.detail.startswith("gemini is rate-limited: 429")


def test_rate_limit_words_in_ordinary_output_do_not_stop_the_run():
    event = AgentEvent("message", text="I will add a rate limit to the API")
    assert StreamPolicy("gemini").observe(event) is None


def test_an_error_event_without_rate_limit_words_does_not_stop_the_run():
    assert StreamPolicy("gemini").observe(AgentEvent("error", text="syntax error", is_error=True)) is None


def test_rate_limited_outranks_a_budget_stop_in_the_same_event():
    policy = StreamPolicy("claude-code", Allowance(Decimal("0.01"), "job_usd"))
    event = AgentEvent("result", text="API overloaded", is_error=True, usage=Usage(cost_usd=Decimal("5")))
    assert policy.observe(event).kind == "rate_limited"


def test_the_policy_carries_idle_and_turn_limits_from_the_agent_config():
    policy = StreamPolicy.from_config("codex", {"max_turns": 7, "idle_timeout_seconds": 30}, Allowance(None))
    assert (policy.max_turns, policy.idle_seconds) == (7, 30)


@pytest.mark.parametrize(("said", "seconds"), [
    ("Claude AI usage limit reached|1700000100", 100),  # Claude Code's usage limit: the reset's unix time
    ("Rate limit reached for gpt-5. Please try again in 6.5s.", 6.5),  # OpenAI's words
    ("You can try again in 2m30s", 150),
    ("429 Too Many Requests; retry after 5 seconds", 5),
    ("retry-after: 7", 7),
])
def test_the_rate_limit_reset_is_read_from_the_cli_s_words(said, seconds):
    assert rate_limit_wait(said, now=1_700_000_000) == seconds


def test_a_rate_limit_that_names_no_reset_gives_no_wait_the_backoff_applies():
    assert rate_limit_wait('API Error: 429 {"type":"error","error":{"type":"rate_limit_error"}}', now=0) is None


def test_a_resumed_session_s_earlier_usage_is_not_billed_again():
    policy = StreamPolicy("codex", usage_before={"input_tokens": 2000, "output_tokens": 200, "cost_usd": "0.0045"})

    policy.observe(AgentEvent(kind="result", usage=Usage(input_tokens=5000, output_tokens=500,
                                                          cost_usd=Decimal("0.01125"))))

    assert (policy.usage["input_tokens"], policy.usage["output_tokens"], policy.usage["cost_usd"]) == (
        3000, 300, "0.00675")
