"""A run whose model has no price costs "unknown", never $0: in the ledger, its total, the
`agileplus costs` table and the API; the priced runs' part is still shown beside it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from agileplus.dispatch import costs
from agileplus.dispatch.models import DispatchJob
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed(db):
    feature, wps = make_feature_with_wps(2, chain=False)
    DispatchJob.objects.create(id="job_priced", feature=feature, wp=wps[0], harness="claude-code",
                               usage={"input_tokens": 1000, "output_tokens": 100, "cost_usd": "0.0045"})
    DispatchJob.objects.create(id="job_unpriced", feature=feature, wp=wps[1], harness="codex",
                               usage={"input_tokens": 3000, "output_tokens": 300, "cost_usd": None})
    return feature


def test_a_row_with_an_unpriced_run_has_an_unknown_total(mixed):
    rows = {r.key: r for r in costs.ledger(feature_id=mixed.pk, by="agent")}

    assert rows["claude-code"].total == Decimal("0.0045")
    assert rows["codex"].total is None and rows["codex"].unpriced == 1
    assert costs.ledger_total(list(rows.values())) is None


def test_the_costs_table_says_unknown_and_the_priced_part(mixed):
    result = run_cli(["costs", mixed.slug])

    assert result.exit_code == 0, result.output
    assert [line.split()[-1] for line in result.output.splitlines()[1:4]] == ["0.0045", "unknown", "unknown"]
    assert "1 run(s) used a model with no price" in result.output and "cost $0.0045" in result.output


def test_the_costs_json_gives_null_for_unknown(mixed):
    result = run_cli(["costs", mixed.slug, "--json"])

    data = json.loads(result.output)
    assert data["total_cost_usd"] is None
    assert {r["key"]: r["cost_usd"] for r in data["rows"]} == {"claude-code": "0.0045", "codex": None}
