"""The lifecycle tables: the one place that says which state changes are legal.

Every entry point (CLI, API, admin actions, workers) goes through
``agileplus.features.services.transition_wp`` / ``transition_feature``, which
consult these tables; nothing else writes a ``state`` field.
"""

from __future__ import annotations

from dataclasses import dataclass


class WPState:
    PLANNED = "planned"
    DOING = "doing"
    FOR_REVIEW = "for_review"
    DONE = "done"
    BLOCKED = "blocked"
    ALL = (PLANNED, DOING, FOR_REVIEW, DONE, BLOCKED)
    CHOICES = [(s, s) for s in ALL]


class FeatureState:
    CREATED = "created"
    SPECIFIED = "specified"
    RESEARCHED = "researched"
    PLANNED = "planned"
    IMPLEMENTING = "implementing"
    REVIEWING = "reviewing"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    ALL = (CREATED, SPECIFIED, RESEARCHED, PLANNED, IMPLEMENTING, REVIEWING, SHIPPED, CANCELLED)
    CHOICES = [(s, s) for s in ALL]
    ORDER = ALL[:-1]


@dataclass(frozen=True)
class Rule:
    """One legal edge. ``approve`` edges need an actor that may approve (human, ci, admin)."""

    source: str
    target: str
    approve: bool = False
    needs_dependencies_done: bool = False


WP_RULES: tuple[Rule, ...] = (
    Rule(WPState.PLANNED, WPState.DOING, needs_dependencies_done=True),
    Rule(WPState.DOING, WPState.FOR_REVIEW),
    Rule(WPState.FOR_REVIEW, WPState.DONE, approve=True),
    Rule(WPState.FOR_REVIEW, WPState.DOING),  # changes requested
    Rule(WPState.PLANNED, WPState.BLOCKED),
    Rule(WPState.DOING, WPState.BLOCKED),
    Rule(WPState.FOR_REVIEW, WPState.BLOCKED),
    Rule(WPState.BLOCKED, WPState.PLANNED),
    # The example's failure screen, option 1: a person finished the partial work by hand and
    # pushed the branch; review and the merge gate check it like an agent's.
    Rule(WPState.BLOCKED, WPState.FOR_REVIEW),
)

FEATURE_RULES: tuple[Rule, ...] = tuple(
    Rule(a, b) for a, b in zip(FeatureState.ORDER, FeatureState.ORDER[1:], strict=False)
) + tuple(Rule(s, FeatureState.CANCELLED) for s in FeatureState.ORDER[:-1])

# Accepted spellings on the command line and in the API (the seed writes "review").
WP_STATE_ALIASES = {"review": WPState.FOR_REVIEW, "for-review": WPState.FOR_REVIEW, "ready": WPState.PLANNED}


def _index(rules: tuple[Rule, ...]) -> dict[tuple[str, str], Rule]:
    return {(r.source, r.target): r for r in rules}


WP_TABLE = _index(WP_RULES)
FEATURE_TABLE = _index(FEATURE_RULES)


def wp_rule(source: str, target: str) -> Rule | None:
    return WP_TABLE.get((source, target))


def feature_rule(source: str, target: str) -> Rule | None:
    return FEATURE_TABLE.get((source, target))


def wp_targets(source: str) -> list[str]:
    return [r.target for r in WP_RULES if r.source == source]


def feature_targets(source: str) -> list[str]:
    return [r.target for r in FEATURE_RULES if r.source == source]


def normalize_wp_state(value: str) -> str:
    value = (value or "").strip().lower()
    return WP_STATE_ALIASES.get(value, value)
