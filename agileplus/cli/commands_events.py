"""``events audit-verify|export-audit|list|tail``: the audit chain and the outbox."""

from __future__ import annotations

import json
import sys
import time

import click

from agileplus.audit.chain import export_lines, verify_chain
from agileplus.cli import render
from agileplus.cli.context import json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json
from agileplus.core.subjects import subject_regex
from agileplus.events.models import Event
from agileplus.features.selectors import list_events, scan_events
from agileplus.features.services import get_feature
from agileplus.operations import audit_check


@cli.group()
def events() -> None:
    """The audit chain and the event outbox."""


@events.command("audit-verify")
@click.option("--feature", "feature_ref", required=True, help="Feature slug or number")
@json_option
def audit_verify(feature_ref: str, as_json: bool) -> None:
    """Recompute every hash of a feature's audit chain; exit 1 naming each problem."""
    feature = get_feature(feature_ref)
    verification = verify_chain(feature)
    result = verification.as_dict()
    if as_json:
        echo_json(result)
    else:
        echo("\n".join(render.verification_lines(result)))
    if not result["ok"]:
        audit_check.report_failure(feature, verification)  # people are told (webhook audit.verify_failed)
        sys.exit(1)


@events.command("export-audit")
@click.option("--feature", "feature_ref", required=True, help="Feature slug or number")
def export_audit(feature_ref: str) -> None:
    """Print the chain as JSON lines, one entry per line (the seed's format)."""
    for line in export_lines(get_feature(feature_ref)):
        echo(line)


def _feature_or_none(ref: str | None):
    return get_feature(ref) if ref else None


@events.command("list")
@click.option("--feature", "feature_ref", default=None, help="Only this feature's events")
@click.option("--subject", "pattern", default=None, help="NATS-style pattern: '*' one token, '>' the rest")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only events with a larger id")
@click.option("--limit", type=click.IntRange(min=1, max=10000), default=100, show_default=True)
@json_option
def events_list(feature_ref: str | None, pattern: str | None, after: int, limit: int, as_json: bool) -> None:
    """Outbox events in id order."""
    if pattern:
        subject_regex(pattern)  # refuse a bad pattern before querying
    rows = [e.as_message() for e in list_events(feature=_feature_or_none(feature_ref), pattern=pattern,
                                                  after=after, limit=limit)]
    if as_json:
        echo_json(rows)
    else:
        for row in rows:
            echo(render.event_line(row))


@events.command("tail")
@click.option("--feature", "feature_ref", default=None, help="Only this feature's events")
@click.option("--subject", "pattern", default=None, help="NATS-style pattern: '*' one token, '>' the rest")
@click.option("--after", type=click.IntRange(min=0), default=None, help="Start after this id (default: now)")
@click.option("--interval", type=click.FloatRange(0.05, 10), default=0.2, show_default=True, hidden=True)
@json_option
def events_tail(feature_ref: str | None, pattern: str | None, after: int | None, interval: float,
                as_json: bool) -> None:
    """Follow new outbox rows as they are written (Ctrl-C stops)."""

    if pattern:
        subject_regex(pattern)
    feature = _feature_or_none(feature_ref)
    last = after if after is not None else (Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0)
    try:
        while True:
            rows, high = scan_events(feature=feature, pattern=pattern, after=last)
            for event in rows:
                message = event.as_message()
                echo(json.dumps(message, default=str) if as_json else render.event_line(message))
            sys.stdout.flush()
            if high == last:
                time.sleep(interval)
            last = high
    except KeyboardInterrupt:
        echo("stopped", err=True)
