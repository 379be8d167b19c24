"""``status``, ``feature import|list|transition``, ``wp transition``: parse, call a service, render."""

from __future__ import annotations

import sys
import time

import click

from agileplus.cli import render
from agileplus.cli.context import actor_option, current_actor, feature_and_wp, json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json, echo_moved, is_tty
from agileplus.core.text import terminal_safe
from agileplus.dispatch.cost_reports import outcomes
from agileplus.dispatch.costs import ledger
from agileplus.features import selectors, services
from agileplus.features.importer import import_features
from agileplus.review.conflicts import predicted_conflicts
from agileplus.review.moves import move_wp


def _status_payload(feature_ref: str | None) -> tuple[dict | list, list[str]]:
    if feature_ref:
        feature = services.get_feature(feature_ref)
        status = selectors.feature_status(feature)
        lines = render.status_lines(status)
        status["cost"], status["predicted_conflicts"] = _cost_and_conflicts(feature)
        if status["cost"]["input_tokens"] or status["cost"]["output_tokens"] or status["cost"]["cost_usd"] != "0":
            c = status["cost"]
            amount = "unknown" if c["cost_usd"] is None else f"${c['cost_usd']}"
            lines.append(f"Agent cost: {amount} ({c['input_tokens']:,} in / {c['output_tokens']:,} out "
                         f"tokens, {c['jobs']} runs)")
            status["spend_outcomes"] = outcomes(feature_id=feature.pk)  # what the spend bought
            lines.append(render.outcomes_line(status["spend_outcomes"]))
        for conflict in status["predicted_conflicts"]:
            lines.append(f"Predicted conflict: {conflict['a']} ↔ {conflict['b']} ({conflict['source']}: "
                         f"{', '.join(conflict['paths'][:3])})")
        return status, lines
    rows = selectors.features_overview()
    return rows, render.overview_lines(rows)


def _cost_and_conflicts(feature) -> tuple[dict, list[dict]]:
    rows = ledger(feature_id=feature.pk, by="feature")
    cost = rows[0].as_dict() if rows else {"jobs": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": "0"}
    return cost, [c.as_dict() for c in predicted_conflicts(feature, with_branches=False)]


def _frame(feature_ref: str | None) -> str:
    _, lines = _status_payload(feature_ref)
    return terminal_safe("\n".join([*lines, "", f"(refreshed {time.strftime('%H:%M:%S')}; Ctrl-C to stop)"]))


def _watch(feature_ref: str | None, interval: float) -> None:
    """Redraw in place on a terminal (rich Live); print one frame after another into a pipe."""
    try:
        if not is_tty():
            while True:
                echo(_frame(feature_ref) + "\n")
                sys.stdout.flush()
                time.sleep(interval)
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        with Live(console=Console(), auto_refresh=False) as live:
            while True:
                live.update(Text(_frame(feature_ref)), refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        echo("stopped")


@cli.command()
@click.argument("feature", required=False)
@click.option("--watch", is_flag=True, help="Redraw every second until Ctrl-C")
@click.option("--interval", type=click.FloatRange(0.1, 60), default=1.0, show_default=True, hidden=True)
@json_option
def status(feature: str | None, watch: bool, interval: float, as_json: bool) -> None:
    """Show a feature's work packages (or one line per feature)."""
    if watch and not as_json:
        _status_payload(feature)  # a bad FEATURE fails now, with its exit code, not inside the live view
        _watch(feature, interval)
        return
    data, lines = _status_payload(feature)
    if as_json:
        echo_json(data)
    else:
        echo("\n".join(lines))


@cli.group()
def feature() -> None:
    """Import, list and move features."""


@feature.command("import")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--project", default=None, help="Project name (default: config 'project' or the repo folder name)")
@click.option("--repo", default=None, type=click.Path(path_type=str), help="Repository root, if not PATH's")
@actor_option
@json_option
def feature_import(path: str, project: str | None, repo: str | None, actor: str | None, as_json: bool) -> None:
    """Import kitty-specs/<slug>/ (a feature folder, or every feature of a repository root)."""
    report = import_features(path, actor=current_actor(actor), project=project, repo=repo)
    if as_json:
        echo_json(report.as_dict())
        return
    for f in report.features:
        verb = "created" if f.slug in report.created else "updated"
        echo(f"✓ {f.slug} {verb}: {f.work_packages.count()} work packages, state {f.state}")
    for note in report.notes:
        echo(f"! {note}")


@feature.command("list")
@json_option
def feature_list(as_json: bool) -> None:
    """Every feature with its state and WP progress."""
    rows = selectors.features_overview()
    if as_json:
        echo_json(rows)
    else:
        echo("\n".join(render.overview_lines(rows)))


@feature.command("transition")
@click.argument("feature_ref", metavar="FEATURE")
@click.option("--to", "target", required=True, help="Target feature state")
@actor_option
@json_option
def feature_transition(feature_ref: str, target: str, actor: str | None, as_json: bool) -> None:
    """Move a feature through its lifecycle."""
    result = services.transition_feature(services.get_feature(feature_ref), target, actor=current_actor(actor))
    if as_json:
        echo_json({"feature": result.feature.slug, "from": result.source, "to": result.target,
                   "audit_entry": result.entry.seq})
    else:
        echo(f"{result.feature.slug} moved from {result.source} to {result.target}")


@cli.group()
def wp() -> None:
    """Work package commands."""


@wp.command("transition")
@click.argument("refs", nargs=-1, required=True, metavar="[FEATURE] WP")
@click.option("--to", "target", required=True,
              help="Target state (planned, doing, for_review, done, blocked; `review` means for_review)")
@click.option("--feature", "feature_ref", default=None, help="Feature (optional when the WP code is unique)")
@click.option("--note", default=None, help="Why: kept in the audit entry's metadata")
@actor_option
@json_option
def wp_transition(refs: tuple[str, ...], target: str, feature_ref: str | None, note: str | None,
                  actor: str | None, as_json: bool) -> None:
    """Move a work package through its lifecycle (a move to done merges)."""

    who = current_actor(actor)
    feature_ref, wp_code = feature_and_wp(refs, feature_ref)
    result = move_wp(services.find_wp(wp_code, feature_ref), target, actor=who,
                     metadata={"note": note} if note else None)
    if as_json:
        echo_moved(result)
        return
    echo(f"{result.wp.code} moved to {result.target}")
    for unblocked in result.unblocked:
        echo(f"{unblocked.code} ({unblocked.title}) is now unblocked")
