"""The NATS subjects of the example, in one place."""

from __future__ import annotations

PREFIX = "agileplus"


def wp_state_changed(feature_slug: str, wp_code: str) -> str:
    return f"{PREFIX}.feature.{feature_slug}.wp.{wp_code}.state.changed"


def wp_unblocked(feature_slug: str, wp_code: str) -> str:
    return f"{PREFIX}.feature.{feature_slug}.wp.{wp_code}.unblocked"


def feature_state_changed(feature_slug: str) -> str:
    return f"{PREFIX}.feature.{feature_slug}.state.changed"


def job_event(job_id: str, kind: str) -> str:
    """``kind`` is one of started, commit, completed (and progress, log for live views)."""
    return f"{PREFIX}.agent.job.{job_id}.{kind}"


ALL_SUBJECTS = f"{PREFIX}.>"
