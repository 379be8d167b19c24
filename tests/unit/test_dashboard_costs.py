"""The dashboard's feature board shows the cost ledger and predicted conflicts."""

from __future__ import annotations

import pytest

from agileplus.dispatch.models import DispatchJob
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db


def test_the_board_shows_each_agents_cost(browser):
    feature, wps = make_feature_with_wps(2, chain=False)
    DispatchJob.objects.create(id="job_a", feature=feature, wp=wps[0], harness="claude-code",
                               usage={"input_tokens": 1200, "output_tokens": 300, "cost_usd": "0.0421"})

    page = browser.get(f"/features/{feature.slug}/").content.decode()

    assert 'data-agent="claude-code"' in page and "$0.0421" in page and "1200 in / 300 out, 1 run" in page


def test_the_board_flags_wps_whose_owned_paths_overlap(browser):
    feature, wps = make_feature_with_wps(2, chain=False)
    for wp in wps:
        wp.owned_paths = ["src/shared.py"]
        wp.save()

    page = browser.get(f"/features/{feature.slug}/").content.decode()

    assert "Predicted conflict: WP01 ↔ WP02: both own src/shared.py" in page


def test_a_run_whose_model_has_no_price_shows_an_unknown_cost_not_zero(browser):
    feature, wps = make_feature_with_wps(1)
    DispatchJob.objects.create(id="job_codex", feature=feature, wp=wps[0], harness="codex",
                               usage={"input_tokens": 3000, "output_tokens": 300, "cost_usd": None})

    page = browser.get(f"/features/{feature.slug}/").content.decode()

    assert "codex unknown (3000 in / 300 out, 1 run)" in page and "$0.0000" not in page
