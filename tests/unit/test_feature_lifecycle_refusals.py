"""A feature's move is refused as a WP's is (one refusal for both lifecycles): each error names
the field at fault and what to do, and nothing is written."""

import pytest

from agileplus.core.errors import DomainError, IllegalTransition, StaleState
from agileplus.features.services import transition_feature
from tests.factories import FeatureFactory

pytestmark = pytest.mark.django_db


def test_a_state_that_does_not_exist_is_refused_naming_the_states():
    feature = FeatureFactory(state="planned")

    with pytest.raises(DomainError) as refused:
        transition_feature(feature, "finished", actor="human:alice")

    assert (refused.value.field, refused.value.message) == ("to", "'finished' is not a feature state")
    assert "use one of created, specified" in refused.value.fix


def test_a_move_from_a_state_the_caller_did_not_expect_is_stale():
    feature = FeatureFactory(state="planned")

    with pytest.raises(StaleState) as refused:
        transition_feature(feature, "implementing", actor="human:alice", expected_source="created")

    assert refused.value.field == "from" and refused.value.fix == "reload the feature and retry"
    assert refused.value.message == f"{feature.slug} is planned, not created"


def test_a_move_the_table_lacks_is_illegal_naming_the_moves_it_has():
    feature = FeatureFactory(state="planned")

    with pytest.raises(IllegalTransition) as refused:
        transition_feature(feature, "shipped", actor="human:alice")

    assert refused.value.field == "to" and refused.value.fix == "from planned it can move to: implementing, cancelled"
    feature.refresh_from_db()
    assert feature.state == "planned" and not feature.audit_entries.exists()


def test_the_expected_state_that_matches_lets_the_move_through():
    feature = FeatureFactory(state="planned")

    moved = transition_feature(feature, "implementing", actor="human:alice", expected_source="planned")

    assert (moved.source, moved.target) == ("planned", "implementing")
