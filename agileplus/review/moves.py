"""Moving a WP: ``move_wp``, the one entry every caller uses (the CLI, review requests run for
the API, MCP and the admin). A move to done is a merge: through the merge queue
(``merge_queue.merge_now``), or with the queue off (or no agent's branch) governance and the
merge at once (``services.merge_for_done``), then the transition. Any other move is
``transition_wp``. It sits above the merge queue, which is built on the review's services.
"""

from __future__ import annotations

from agileplus.core.actors import Actor, parse_actor
from agileplus.features.lifecycles import WPState, normalize_wp_state
from agileplus.features.models import WorkPackage
from agileplus.features.services import TransitionResult, transition_wp
from agileplus.review.merge_batches import queue_config
from agileplus.review.merge_queue import merge_now
from agileplus.review.services import ensure_may_approve, merge_for_done


def move_wp(
    wp: WorkPackage, target: str, *, actor: Actor | str, expected_source: str | None = None,
    metadata: dict | None = None,
) -> TransitionResult:
    """Move a WP. To ``done``: governance on every commit, then merge, then transition."""
    actor = parse_actor(actor)
    target = normalize_wp_state(target)
    if target != WPState.DONE:
        return transition_wp(wp, target, actor=actor, expected_source=expected_source, metadata=metadata)
    ensure_may_approve(wp, actor)
    wp.refresh_from_db()
    if wp.state != WPState.FOR_REVIEW:
        return transition_wp(wp, target, actor=actor, expected_source=expected_source, metadata=metadata)
    if wp.jobs.exists() and queue_config(wp.feature.project).enabled:
        return merge_now(wp, actor, metadata)
    merge = merge_for_done(wp, actor)
    meta = {**(metadata or {}), **({"merge": merge} if merge else {})}
    return transition_wp(wp, WPState.DONE, actor=actor, expected_source=expected_source, metadata=meta)
