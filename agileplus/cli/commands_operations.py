"""`webhooks add|list|remove|test`, `backup`, `restore`, `purge`: thin over agileplus/operations."""

from __future__ import annotations

from pathlib import Path

import click

from agileplus.cli.context import json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json
from agileplus.operations import backup as backups
from agileplus.operations import retention, webhooks
from agileplus.operations.notifications import SUBJECTS


def _endpoint_dict(endpoint) -> dict:
    return {"name": endpoint.name, "url": endpoint.url, "subjects": endpoint.subjects, "format": endpoint.format,
            "enabled": endpoint.enabled}


@cli.group("webhooks")
def webhooks_group() -> None:
    """Webhook endpoints told about blocked WPs, merges, shipped features, budgets, parked accounts
    and audit failures (signed with HMAC-SHA256, retried with backoff)."""


@webhooks_group.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--subject", "subjects", multiple=True, required=True, type=click.Choice(list(SUBJECTS)),
              help="A notification subject (repeat for several)")
@click.option("--slack", is_flag=True, help="Slack-compatible body ({\"text\": …}) for an incoming webhook")
@json_option
def webhooks_add(name: str, url: str, subjects: tuple[str, ...], slack: bool, as_json: bool) -> None:
    """Add an endpoint; prints its signing secret, once."""
    endpoint, secret = webhooks.add_endpoint(name, url, list(subjects), slack=slack)
    if as_json:
        echo_json({**_endpoint_dict(endpoint), "secret": secret})
        return
    echo(f"Webhook {endpoint.name} → {endpoint.url} ({', '.join(endpoint.subjects)})")
    echo(f"Signing secret (shown once; verify X-AgilePlus-Signature with it): {secret}")


@webhooks_group.command("list")
@json_option
def webhooks_list(as_json: bool) -> None:
    """The endpoints and their subjects (never their secrets)."""
    endpoints = [_endpoint_dict(e) for e in webhooks.list_endpoints()]
    if as_json:
        echo_json(endpoints)
    elif not endpoints:
        echo("No webhooks. Add one: agileplus webhooks add NAME URL --subject wp.blocked")
    for e in [] if as_json else endpoints:
        echo(f"{e['name']:<20} {e['format']:<5} {e['url']}  {', '.join(e['subjects'])}")


@webhooks_group.command("remove")
@click.argument("name")
def webhooks_remove(name: str) -> None:
    """Remove an endpoint (its delivery log stays)."""
    webhooks.remove_endpoint(name)
    echo(f"Removed webhook {name}")


@webhooks_group.command("test")
@click.argument("name")
@json_option
def webhooks_test(name: str, as_json: bool) -> None:
    """Send a test notification now; exit 1 if the receiver did not accept it (retried later)."""
    delivery = webhooks.send_test(name)
    if as_json:
        echo_json({"delivery": delivery.pk, "state": delivery.state, "status": delivery.last_status,
                   "error": delivery.last_error})
    elif delivery.state == delivery.DELIVERED:
        echo(f"Delivered to {name}: HTTP {delivery.last_status}")
    else:
        echo(f"Not delivered to {name}: {delivery.last_error} (retried with backoff)", err=True)
    if delivery.state != delivery.DELIVERED:
        raise SystemExit(1)


@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-notes", is_flag=True, help="Leave the origins' git notes out (an origin unreachable from here)")
@json_option
def backup_command(file: Path, no_notes: bool, as_json: bool) -> None:
    """Write the database and the origins' git notes to FILE (a .tar.gz)."""
    manifest = backups.backup(file, notes=not no_notes)
    if as_json:
        echo_json(manifest)
    else:
        echo(f"Backup written to {file}: {len(manifest['audit_heads'])} feature(s), "
             f"notes of {len(manifest['notes'])} origin(s)")


@cli.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Delete everything in this database first")
@json_option
def restore_command(file: Path, replace: bool, as_json: bool) -> None:
    """Load a backup into this farm's (empty) database and verify every audit chain."""
    report = backups.restore(file, replace=replace)
    if as_json:
        echo_json(report)
        return
    entries = sum(r["entries"] for r in report["audit"].values())
    echo(f"Restored {file} (made {report['created_at']}): {len(report['audit'])} feature(s), "
         f"{entries} audit entries, every chain verified; notes of {len(report['notes'])} origin(s)")


@cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would go, delete nothing")
@json_option
def purge_command(dry_run: bool, as_json: bool) -> None:
    """Delete what is past its retention (job logs, events, deliveries, sessions, salvage refs)."""
    result = retention.purge(dry_run=dry_run)
    if as_json:
        echo_json(result)
        return
    verb = "would delete" if dry_run else "deleted"
    echo(", ".join(f"{verb} {len(v) if isinstance(v, list) else v} {k.replace('_', ' ')}"
                   for k, v in result.items()) or "nothing to purge: every retention is 0 (kept for ever)")
