"""When the runner stops an agent because of what it said: budget, turn cap, rate limit, idle.

The runner feeds every parsed ``AgentEvent`` to ``StreamPolicy.observe``; the policy keeps the
run's cumulative usage and answers with the ``StopReason`` to stop on, or ``None``. Idle is
measured by the process itself (``AgentProcess(idle_seconds=...)``); the policy carries the limit
so all four limits of a run are read from the feature's agent config in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agileplus.dispatch.costs import Allowance, usage_cost
from harnesses.base import AgentEvent
from harnesses.process import StopReason

# What the agent CLIs say when their backend refuses more work for now.
RATE_LIMITED = re.compile(r"rate[ _-]?limit|\b429\b|too many requests|quota exceeded|overloaded", re.IGNORECASE)


@dataclass
class StreamPolicy:
    """The limits of one run and the usage seen so far (the latest cumulative figures)."""

    harness: str
    allowance: Allowance = field(default_factory=lambda: Allowance(None))
    max_turns: int | str | None = None
    idle_seconds: float | None = None
    usage: dict = field(default_factory=dict)
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
            self.usage.update({k: v for k, v in event.usage.as_dict().items() if v is not None})
            stop = self._spending_stop()
        if event.is_error and RATE_LIMITED.search(event.text or ""):
            stop = StopReason("rate_limited", f"{self.harness} is rate-limited: {event.text[:200]}")
        return stop

    def _spending_stop(self) -> StopReason | None:
        cost = usage_cost(self.usage)
        if self.allowance.crossed(cost):
            return StopReason("budget", f"cost ${cost} crossed the {self.allowance.budget} budget "
                                        f"(${self.allowance.limit} left)")
        if self.max_turns and (self.usage.get("turns") or 0) > int(self.max_turns):
            return StopReason("turns", f"{self.usage['turns']} turns exceed max_turns {self.max_turns}")
        return None
