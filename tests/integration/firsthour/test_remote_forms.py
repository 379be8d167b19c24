"""The remote CLI takes the same `wp transition FEATURE WP --note` form as the local one."""

from __future__ import annotations

import pytest

from agileplus.api.services import create_api_token
from agileplus.audit.models import AuditEntry
from tests.factories import make_feature_with_wps
from tests.integration.api.test_remote_cli import remote
from tests.support.server import running_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_wp_transition_on_a_remote_farm_takes_feature_wp_and_a_note():
    feature, _ = make_feature_with_wps(2)
    token = create_api_token("erin", "human")
    with running_web() as url:
        moved = remote(url, token, "wp", "transition", feature.slug, "WP01", "--to", "doing", "--note", "on it")
        no_feature = remote(url, token, "wp", "transition", "WP01", "--to", "for_review")

    assert moved.returncode == 0, moved.stderr
    assert AuditEntry.objects.get(feature=feature, transition="WP01:planned->doing").metadata["note"] == "on it"
    assert no_feature.returncode != 0 and "needs the feature" in no_feature.stderr
