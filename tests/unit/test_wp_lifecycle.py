"""The WP lifecycle table, enforced by the one transition service."""

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.core.errors import BlockedByDependency, IllegalTransition, PermissionDenied
from agileplus.events.models import Event
from agileplus.features.lifecycles import WP_RULES, WPState
from agileplus.features.services import transition_wp
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db

LEGAL = {(r.source, r.target) for r in WP_RULES}
ILLEGAL = [(a, b) for a in WPState.ALL for b in WPState.ALL if (a, b) not in LEGAL]


@pytest.mark.parametrize(("source", "target"), sorted(LEGAL))
def test_every_legal_transition_is_applied_with_one_audit_entry_and_one_event(source, target):
    feature, (wp,) = make_feature_with_wps(1)
    wp.state = source
    wp.save()
    result = transition_wp(wp, target, actor="human:alice")
    wp.refresh_from_db()
    assert wp.state == target
    assert result.entry.transition == f"WP01:{source}->{target}"
    assert Event.objects.filter(subject=f"agileplus.feature.{feature.slug}.wp.WP01.state.changed").count() == 1


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_every_illegal_transition_is_refused_and_nothing_is_written(source, target):
    feature, (wp,) = make_feature_with_wps(1)
    wp.state = source
    wp.save()
    with pytest.raises(IllegalTransition):
        transition_wp(wp, target, actor="human:alice")
    wp.refresh_from_db()
    assert wp.state == source
    assert not feature.audit_entries.exists()
    assert not Event.objects.exists()


def test_doing_is_refused_while_a_dependency_is_not_done_and_the_error_names_it():
    feature, (wp1, wp2, _) = make_feature_with_wps(3)
    with pytest.raises(BlockedByDependency, match="WP01"):
        transition_wp(wp2, "doing", actor="human:alice")


def test_an_agent_cannot_approve_work():
    feature, (wp,) = make_feature_with_wps(1)
    wp.state = "for_review"
    wp.save()
    with pytest.raises(PermissionDenied):
        transition_wp(wp, "done", actor="agent:claude-code")


def test_done_unblocks_dependents_whose_dependencies_are_all_done():
    feature, (wp1, wp2, wp3) = make_feature_with_wps(3)
    for target in ("doing", "for_review"):
        transition_wp(wp1, target, actor="agent:claude-code")
    result = transition_wp(wp1, "done", actor="ci:automation")
    assert [w.code for w in result.unblocked] == ["WP02"]
    event = Event.objects.get(subject=f"agileplus.feature.{feature.slug}.wp.WP02.unblocked")
    assert event.payload == {"wp_id": "WP02", "unblocked_by": "WP01", "ready_to_start": True}
    assert verify_chain(feature).ok


def test_feature_follows_its_wps_to_shipped():
    feature, wps = make_feature_with_wps(2)
    for wp in wps:
        for target, actor in (("doing", "agent:x"), ("for_review", "agent:x"), ("done", "ci:automation")):
            transition_wp(wp, target, actor=actor)
    feature.refresh_from_db()
    assert feature.state == "shipped"
    transitions = list(feature.audit_entries.values_list("transition", flat=True))
    assert "planned->implementing" in transitions and "reviewing->shipped" in transitions
    assert verify_chain(feature).ok
