"""Signals sent after a transition's transaction commits (auto-dispatch, relay wake-up)."""

from django.dispatch import Signal

# kwargs: wp_id, feature_id, source, target, actor, unblocked_ids
wp_transitioned = Signal()
# kwargs: feature_id, source, target, actor
feature_transitioned = Signal()
