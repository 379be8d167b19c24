"""What the spend bought (cost per merged WP, wasted attempts) under `status` and on the board,
as `costs` shows it."""

from __future__ import annotations

import json

import pytest

from agileplus.features.models import WorkPackage
from tests.factories import DispatchJobFactory, make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


def spent_feature():
    feature, (merged, failed) = make_feature_with_wps(2, chain=False)
    WorkPackage.objects.filter(pk=merged.pk).update(state="done")
    DispatchJobFactory(wp=merged, state="succeeded", usage={"input_tokens": 10, "output_tokens": 5,
                                                            "cost_usd": "0.25"})
    DispatchJobFactory(wp=failed, state="timed_out", usage={"input_tokens": 10, "output_tokens": 5,
                                                            "cost_usd": "0.5"})
    return feature


def test_status_ends_with_the_cost_per_merged_wp_and_the_wasted_attempts():
    feature = spent_feature()

    shown = run_cli(f"status {feature.slug}")

    assert "Merged WPs: 1 at $0.2500 each; wasted attempts: 1, $0.5000 (timed_out 1)" in shown.output


def test_status_json_carries_the_same_figures():
    feature = spent_feature()

    shown = json.loads(run_cli(f"status {feature.slug} --json").output)

    assert (shown["spend_outcomes"]["merged_wps"], shown["spend_outcomes"]["wasted_attempts"]) == (1, 1)


def test_the_board_shows_what_the_spend_bought(browser):
    feature = spent_feature()

    page = browser.get(f"/features/{feature.slug}/").content.decode()

    assert 'id="spend-outcomes">Merged WPs: 1 at $0.25 each; wasted attempts: 1, $0.5 (timed_out 1)' in page
