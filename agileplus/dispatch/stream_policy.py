"""When the runner stops an agent because of what it said: budget, turn cap, rate limit, idle.

The runner feeds every parsed ``AgentEvent`` to ``StreamPolicy.observe``; the policy keeps the
run's cumulative usage and answers with the ``StopReason`` to stop on, or ``None``. Idle is
measured by the process itself (``AgentProcess(idle_seconds=...)``); the policy carries the limit
so all four limits of a run are read from the feature's agent config in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from agileplus.dispatch.costs import Allowance, usage_cost
from harnesses.base import AgentEvent
from harnesses.process import StopReason

# What the agent CLIs say when their backend refuses more work for now.
RATE_LIMITED = re.compile(r"rate[ _-]?limit|\b429\b|too many requests|quota exceeded|overloaded", re.IGNORECASE)
# When they say it will end: Claude Code's usage limit "…limit reached|<unix time>", OpenAI's
# "Please try again in 6.5s" / "in 2m30s", and "retry after N seconds" / "retry-after: N".
RESET_AT = re.compile(r"limit reached\|(\d{10})\b")
TRY_AGAIN_IN = re.compile(r"(?:try again|retry)(?: after| in)?:?\s+"
                          r"((?:\d+(?:\.\d+)?\s*(?:ms|h|m|s|seconds?|minutes?|hours?)\s*)+)", re.IGNORECASE)
RETRY_AFTER = re.compile(r"retry[ -]after\W{0,3}(\d+(?:\.\d+)?)\b(?!\s*(?:ms|m\b|h\b|min|hour))", re.IGNORECASE)
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def rate_limit_wait(text: str, now: float) -> float | None:
    """Seconds until the rate limit the CLI reported resets, if its words say; else None."""
    if found := RESET_AT.search(text or ""):
        return max(0.0, int(found.group(1)) - now)
    if found := TRY_AGAIN_IN.search(text or ""):
        total = 0.0
        for amount, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|h|m|s)", found.group(1).lower()):
            total += float(amount) * UNIT_SECONDS[unit]
        return total
    if found := RETRY_AFTER.search(text or ""):
        return float(found.group(1))
    return None


@dataclass
class StreamPolicy:
    """The limits of one run and the usage seen so far (the latest cumulative figures)."""

    harness: str
    allowance: Allowance = field(default_factory=lambda: Allowance(None))
    max_turns: int | str | None = None
    idle_seconds: float | None = None
    usage: dict = field(default_factory=dict)
    # What a resumed session had already used, for a CLI whose figures span the whole session
    # (``HarnessAdapter.session_usage``): subtracted, so a run is billed only its own turns.
    usage_before: dict = field(default_factory=dict)
    last_error: str = ""  # what the CLI last reported as an error: the reason a failed or empty run gives
    model: str = ""  # the model the CLI says it runs

    @classmethod
    def from_config(cls, harness: str, config: dict, allowance: Allowance) -> StreamPolicy:
        """The policy for a run with the feature's agent ``config`` and the budget ``allowance``."""
        return cls(harness, allowance, config.get("max_turns"), config.get("idle_timeout_seconds"))

    def observe(self, event: AgentEvent) -> StopReason | None:
        """Record the event's usage; the reason to stop the agent now, if any.
        A rate limit outranks a budget or turn stop seen in the same event: it is rerouted."""
        stop = None
        if (event.is_error or event.kind == "error") and event.text:
            self.last_error = event.text
        if event.model:
            self.model = event.model
        if event.usage:
            figures = {k: v for k, v in event.usage.as_dict().items() if v is not None}
            self.usage.update(self._own(figures) if self.usage_before else figures)
            stop = self._spending_stop()
        if event.is_error and RATE_LIMITED.search(event.text or ""):
            stop = StopReason("rate_limited", f"{self.harness} is rate-limited: {event.text[:200]}")
        return stop

    def _own(self, figures: dict) -> dict:
        """The session's cumulative figures less what it had used before this run."""
        own = dict(figures)
        for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
            if name in own:
                own[name] = max(0, int(own[name]) - int(self.usage_before.get(name) or 0))
        if own.get("cost_usd") is not None and self.usage_before.get("cost_usd") is not None:
            own["cost_usd"] = str(max(Decimal(0), Decimal(own["cost_usd"]) - Decimal(self.usage_before["cost_usd"])))
        return own

    def _spending_stop(self) -> StopReason | None:
        cost = usage_cost(self.usage)
        if self.allowance.crossed(cost):
            return StopReason("budget", f"cost ${cost} crossed the {self.allowance.budget} budget "
                                        f"(${self.allowance.limit} left)")
        if self.max_turns and (self.usage.get("turns") or 0) > int(self.max_turns):
            return StopReason("turns", f"{self.usage['turns']} turns exceed max_turns {self.max_turns}")
        return None
