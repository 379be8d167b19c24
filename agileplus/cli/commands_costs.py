"""`agileplus costs`: the cost ledger, thin over agileplus.dispatch.costs."""

from __future__ import annotations

import click

from agileplus.cli.context import json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json
from agileplus.cli.render import outcomes_line
from agileplus.dispatch import cost_reports, costs
from agileplus.features.services import get_feature
from agileplus.workflow.selectors import candidate_spend


@cli.command("costs")
@click.argument("feature_ref", required=False, metavar="[FEATURE]")
@click.option("--by", type=click.Choice(cost_reports.GROUPINGS), default="agent", show_default=True,
              help="Group the ledger by agent, WP, day, feature, attempt (and what became of it), or (from the "
                   "model gateway's calls) model or account")
@json_option
def costs_command(feature_ref: str | None, by: str, as_json: bool) -> None:
    """Tokens and USD spent by agents, from every job's reported usage."""
    feature = get_feature(feature_ref) if feature_ref else None
    rows = cost_reports.ledger(feature_id=feature.pk if feature else None, by=by)
    total = costs.ledger_total(rows)
    split = candidate_spend(feature.pk if feature else None)
    spent_on = cost_reports.outcomes(feature_id=feature.pk if feature else None)
    if as_json:
        echo_json({"feature": feature.slug if feature else None, "by": by, "rows": [r.as_dict() for r in rows],
                   "total_cost_usd": None if total is None else str(total), "outcomes": spent_on,
                   "candidates": split})
        return
    if not rows:
        echo("No agent runs yet.")
        return
    width = max(len(r.key) for r in rows + [costs.LedgerRow(by.upper(), 0, 0, 0, 0, costs.ZERO)])
    echo(f"{by.upper():<{width}}  {'JOBS':>5}  {'INPUT':>10}  {'CACHED':>10}  {'OUTPUT':>10}  {'USD':>10}")
    for r in rows:
        echo(f"{r.key:<{width}}  {r.jobs:>5}  {r.input_tokens:>10,}  {r.cached_input_tokens:>10,}  "
             f"{r.output_tokens:>10,}  {costs.money(r.total):>10}")
    echo(f"{'Total':<{width}}  {sum(r.jobs for r in rows):>5}  {'':>10}  {'':>10}  {'':>10}  "
               f"{costs.money(total):>10}")
    if total is None:
        echo(f"unknown: {sum(r.unpriced for r in rows)} run(s) used a model with no price "
                   "(add it to agent.prices or harnesses/prices.json); the priced runs cost "
                   f"${costs.money(sum((r.cost_usd for r in rows), costs.ZERO))}")
    echo(outcomes_line(spent_on))
    for row in split:  # best of N: what the choice cost beyond the winner
        echo(f"{row['feature']} {row['wp']}: {row['candidates']} candidates, ${row['winner']} on the winner, "
             f"${row['others']} on the others")
