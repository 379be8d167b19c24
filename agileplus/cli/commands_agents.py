"""`agileplus agents` (list, check): the farm's workers with the harnesses each can run (sandbox,
network, credentials present by name), and the check of each agent CLI against a scripted model."""

from __future__ import annotations

import click
from django.utils import timezone

from agileplus.cli.accounts_screen import echo_accounts
from agileplus.cli.context import json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json
from agileplus.core.errors import DomainError
from agileplus.dispatch import selectors
from agileplus.dispatch.sandboxing import local_harnesses
from harnesses.base import HarnessError
from harnesses.check import as_json as results_json
from harnesses.check import check_harnesses, render

AGENT_SCREEN = {"active": ("active", "connected"), "idle": ("available", "connected"),
                "available": ("available", "idle"), "unavailable": ("unavailable", "unavailable")}


def _ago(moment) -> str:
    if not moment:
        return "never"
    seconds = int((timezone.now() - moment).total_seconds())
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''} ago"
    if seconds < 3600:
        return f"{seconds // 60} minute{'s' if seconds // 60 != 1 else ''} ago"
    return f"{seconds // 3600} hour{'s' if seconds // 3600 != 1 else ''} ago"


def _sandbox_line(info: dict) -> str:
    """Sandbox mode, network policy and credential names (present / missing) of a harness on a worker."""
    creds = info.get("credentials") or {}
    present = ", ".join(creds.get("present") or []) or "none"
    missing = ", ".join(creds.get("missing") or [])
    return (f"Sandbox: {info.get('sandbox', 'unknown')}, network {info.get('network', 'model')}"
            f"{_agent_identity(info)}; credentials: {present}" + (f" (missing: {missing})" if missing else ""))


def _agent_identity(info: dict) -> str:
    """The agent's capabilities and uid, and what bounds its memory (the job, or each process and why)."""
    if "capabilities" not in info:  # announced by a worker of an earlier version
        return ""
    memory = info.get("memory") or {}
    bound = (f"memory per job (cgroup {memory.get('cgroup')})" if memory.get("scope") == "job"
             else f"memory per process only ({memory.get('why', 'no memory cgroup')})")
    return f", capabilities {info['capabilities']}, uid {info.get('uid')}, {bound}"


@cli.group()
def agents() -> None:
    """Agent harnesses."""


@agents.command("list")
@json_option
def agents_list(as_json) -> None:
    rows = selectors.agents_overview(local_harnesses())
    if as_json:
        echo_json(rows)
        return
    echo("Available Agent Harnesses:")
    for row in rows:
        # The example's words: (active) with sessions, (available) otherwise; "connected" while a
        # live worker serves it, "idle" when only installed or its workers went quiet.
        header, state = AGENT_SCREEN.get(row["status"], (row["status"], row["status"]))
        echo(f"{row['name']} ({header})")
        echo(f"  Status: {state}")
        if row["model"]:
            echo(f"  Model: {row['model']}")
        if row.get("version"):
            echo(f"  Version: {row['version']}")
        echo(f"  Last heartbeat: {_ago(row['last_heartbeat'])}")
        echo(f"  Sessions: {row['sessions']} active")
        for w in row["workers"]:
            echo(f"    worker {w['hostname']}: {w['sessions']} active"
                       f"{'' if w['alive'] else ' (no heartbeat)'}")
            echo(f"      {_sandbox_line(w)}")
        if row["local"].get("sandbox"):
            echo(f"  This machine: {_sandbox_line(row['local'])}")
        if row["status"] == "unavailable" and row["local"].get("reason"):
            echo(f"  Why: {row['local']['reason']}")
    echo_accounts()
    echo("Select harness with --agent flag or set default in config.")


@agents.command("check")
@click.argument("harnesses", nargs=-1)
@click.option("--pinned", is_flag=True, help="Check the CLIs pinned in tools/agent-clis instead of those on PATH.")
@json_option
def agents_check(harnesses, pinned, as_json) -> None:
    """Run each installed agent CLI against a built-in scripted model endpoint (no tokens spent)
    in a scratch repository; exit 1 if any drifted from what its adapter expects. A CLI is the
    one AGILEPLUS_<HARNESS>_BIN names, else on PATH, else the pinned copy in tools/agent-clis."""
    try:
        results = check_harnesses(list(harnesses) or None, use_pinned=pinned)
    except HarnessError as exc:
        raise DomainError(str(exc), field="harnesses", fix="name harnesses from `agileplus agents list`") from None
    echo(results_json(results) if as_json else "\n".join(render(results)))
    drifted = [r for r in results if r.problems]
    if drifted:
        raise SystemExit(1)
