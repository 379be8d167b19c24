"""A run whose model has no price costs "unknown", never $0: in the ledger, its total, the
`agileplus costs` table and the API; the priced runs' part is still shown beside it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.utils import timezone

from agileplus.dispatch import costs
from agileplus.dispatch.models import DispatchJob, ModelCall
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


def test_the_ledger_by_model_and_account_comes_from_the_gateway_s_calls(mixed):
    job = DispatchJob.objects.get(id="job_priced")
    for model, tokens, cost in (("claude-sonnet-4-5", 1000, "0.0045"), ("claude-haiku-4-5", 10, "0.000015"),
                                ("claude-mystery-9", 50, None)):
        ModelCall.objects.create(job=job, feature=job.feature, wp=job.wp, harness="claude-code", provider="anthropic",
                                 account="anthropic:abc", model=model, method="POST", path="/v1/messages",
                                 status=200, outcome="ok", input_tokens=tokens, output_tokens=1, cost_usd=cost,
                                 started_at=timezone.now())

    by_model = {r.key: r.total for r in costs.ledger(feature_id=mixed.pk, by="model")}
    [account] = costs.ledger(feature_id=mixed.pk, by="account")

    assert by_model == {"claude-haiku-4-5": Decimal("0.000015"), "claude-mystery-9": None,
                        "claude-sonnet-4-5": Decimal("0.0045")}
    assert (account.key, account.jobs, account.input_tokens, account.total) == ("anthropic:abc", 1, 1060, None)
