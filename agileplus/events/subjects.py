"""The NATS subjects of the example, in one place."""

from __future__ import annotations

import re

from agileplus.core.errors import DomainError

PREFIX = "agileplus"


def wp_state_changed(feature_slug: str, wp_code: str) -> str:
    return f"{PREFIX}.feature.{feature_slug}.wp.{wp_code}.state.changed"


def wp_unblocked(feature_slug: str, wp_code: str) -> str:
    return f"{PREFIX}.feature.{feature_slug}.wp.{wp_code}.unblocked"


def wp_fresh_start(feature_slug: str, wp_code: str) -> str:
    """`implement --fresh`: the WP's branch set aside under salvage/, a new one from main."""
    return f"{PREFIX}.feature.{feature_slug}.wp.{wp_code}.fresh_start"


def feature_state_changed(feature_slug: str) -> str:
    return f"{PREFIX}.feature.{feature_slug}.state.changed"


def job_event(job_id: str, kind: str) -> str:
    """``kind`` is one of started, commit, completed (and progress, log for live views)."""
    return f"{PREFIX}.agent.job.{job_id}.{kind}"


CANDIDATE_KINDS = ("started", "scored", "chosen", "none_passed")


def wp_candidate(wp_code: str, kind: str) -> str:
    """Best of N: a WP's candidates; ``kind`` is one of CANDIDATE_KINDS."""
    return f"{PREFIX}.agent.wp.{wp_code}.candidate.{kind}"


MERGE_QUEUE_KINDS = ("queued", "testing", "progress", "merged", "ejected")


def merge_queue_wp(feature_slug: str, wp_code: str, kind: str) -> str:
    """A WP in the merge queue; ``kind`` is one of MERGE_QUEUE_KINDS."""
    return f"{PREFIX}.merge.{feature_slug}.wp.{wp_code}.{kind}"


def merge_main_moved(feature_slug: str) -> str:
    """Main moved to a candidate that passed the checks (one per main move, per feature in the batch)."""
    return f"{PREFIX}.merge.{feature_slug}.main.moved"


ALL_SUBJECTS = f"{PREFIX}.>"


def on_nats(subject: str, prefix: str) -> str:
    """The subject an outbox row is published under on NATS: the rows keep ``agileplus.…``
    (what ``events list --subject`` matches), NATS gets ``<prefix>.…``."""
    return prefix + subject[len(PREFIX):] if subject.startswith(PREFIX + ".") else subject


def nats_prefix(prefix: str) -> str:
    """``prefix`` if NATS accepts it as leading subject tokens, else a DomainError naming the setting."""

    if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", prefix or ""):
        raise DomainError(f"'{prefix}' is not a NATS subject prefix", field="AGILEPLUS_NATS_SUBJECT_PREFIX",
                          fix="dot-separated letters, digits, '-' or '_', e.g. farm2 or acme.agileplus")
    return prefix
