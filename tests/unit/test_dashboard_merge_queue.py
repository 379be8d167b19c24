"""The dashboard's feature board shows the merge queue: order, batch, check progress, and why a WP
was ejected."""

from __future__ import annotations

import pytest

from agileplus.review.models import MergeQueueEntry
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db


def test_the_board_shows_the_queue_in_order_with_batch_progress_and_ejections(browser):
    feature, wps = make_feature_with_wps(3, chain=False)
    repo = feature.project.repo_url
    for wp in wps[:2]:
        MergeQueueEntry.objects.create(repo=repo, feature=feature, wp=wp, actor="ci:automation", state="testing",
                                       batch="b1", progress={"batch_wps": ["WP01", "WP02"], "passed": ["secret_scan"]})
    MergeQueueEntry.objects.create(repo=repo, feature=feature, wp=wps[2], actor="ci:automation", state="ejected",
                                   reason="WP03 fails tests when merged with main 1234567")

    page = browser.get(f"/features/{feature.slug}/").content.decode()

    assert page.index('data-wp="WP01" data-state="testing"') < page.index('data-wp="WP02" data-state="testing"')
    assert "with WP01, WP02" in page and "✓ secret_scan" in page
    assert "WP03 fails tests when merged with main 1234567" in page
