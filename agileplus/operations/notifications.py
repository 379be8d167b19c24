"""Which outbox events a person is told about, and what the message says.

=====================  ===========================================================  ==========
notification subject   outbox event                                                 when
=====================  ===========================================================  ==========
``wp.blocked``         ``agileplus.feature.<f>.wp.<wp>.state.changed``              to blocked
``wp.merged``          ``agileplus.feature.<f>.wp.<wp>.state.changed``              to done
``feature.shipped``    ``agileplus.feature.<f>.state.changed``                      to shipped
``budget.reached``     ``agileplus.feature.<f>.wp.<wp>.state.changed``              to blocked,
                                                                                    reason budget_exceeded
``account.parked``     ``agileplus.account.<account>.parked``                       always
``audit.verify_failed`` ``agileplus.audit.<f>.verify_failed`` (``audit_check``)    always
=====================  ===========================================================  ==========
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from agileplus.core.subjects import subject_matches
from agileplus.events.models import Event

WP_CHANGED = "agileplus.feature.*.wp.*.state.changed"


@dataclass(frozen=True)
class Notification:
    pattern: str  # the outbox subject (NATS-style pattern)
    when: Callable[[dict], bool]
    text: Callable[[list[str], dict], str]  # subject tokens, payload → one line for people


def _to(state: str) -> Callable[[dict], bool]:
    return lambda payload: payload.get("to") == state


SUBJECTS: dict[str, Notification] = {
    "wp.blocked": Notification(WP_CHANGED, _to("blocked"), lambda t, p: (
        f"{t[2]} {t[4]} is blocked ({p.get('reason') or 'no reason given'}): a person is needed")),
    "wp.merged": Notification(WP_CHANGED, _to("done"), lambda t, p: f"{t[2]} {t[4]} was merged into main"),
    "feature.shipped": Notification("agileplus.feature.*.state.changed", _to("shipped"),
                                    lambda t, p: f"feature {t[2]} shipped: every work package is merged"),
    "budget.reached": Notification(WP_CHANGED, lambda p: _to("blocked")(p) and p.get("reason") == "budget_exceeded",
                                   lambda t, p: f"{t[2]} {t[4]} stopped: its budget is spent"),
    "account.parked": Notification("agileplus.account.*.parked", lambda p: True, lambda t, p: (
        f"provider account {t[2]} is parked{' until ' + p['until'] if p.get('until') else ''}")),
    "audit.verify_failed": Notification("agileplus.audit.*.verify_failed", lambda p: True, lambda t, p: (
        f"the audit chain of {t[2]} does not verify: {p.get('problems', '?')} problem(s)")),
}
# Cheap SQL pre-filters of the outbox scan: one per distinct pattern (the rest is matched here).
PATTERN_PREFIXES = ("agileplus.feature.", "agileplus.account.", "agileplus.audit.")


def subjects_of(event: Event) -> list[str]:
    """The notification subjects an outbox event is, in the table's order (often none)."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    return [name for name, n in SUBJECTS.items() if subject_matches(n.pattern, event.subject) and n.when(payload)]


def message(name: str, event: Event) -> str:
    return SUBJECTS[name].text(event.subject.split("."), event.payload or {})


def render_body(name: str, event: Event | None, *, slack: bool, text: str | None = None) -> str:
    """The delivery's body: JSON with the event, or Slack's ``{"text": …}``."""
    text = text if text is not None else message(name, event)
    if slack:
        return json.dumps({"text": f"AgilePlus: {text}"}, ensure_ascii=False)
    body = {"subject": name, "text": text}
    if event is not None:
        body.update(event=event.as_message())
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
