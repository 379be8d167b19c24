"""Shared rendering helpers for the CLI: JSON output and the seed's progress bars."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from agileplus.core.errors import DomainError
from agileplus.core.text import terminal_safe

BAR_WIDTH = 12


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def echo_json(data: Any) -> None:
    echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def echo_moved(result: Any) -> None:
    """A WP's move (``features.services.TransitionResult``) as JSON, in its one shape
    (``as_dict``, which ``api.output.MovedOut`` renders too)."""
    echo_json(result.as_dict())


def emit_error(exc: DomainError, *, as_json: bool = False) -> None:
    if as_json:
        echo(json.dumps({"error": exc.as_dict()}), err=True)
        return
    where = f" [{exc.field}]" if exc.field else ""
    echo(f"error{where}: {exc.message}", err=True)
    if exc.fix:
        echo(f"  fix: {exc.fix}", err=True)


def mark_json(ctx: click.Context | None = None) -> None:
    """Tell the error handler this invocation wants JSON errors."""
    ctx = ctx or click.get_current_context()
    ctx.find_root().meta["json"] = True


def is_tty() -> bool:
    return sys.stdout.isatty()


def echo(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    """The one way the CLI prints: titles, log lines, commit subjects and errors come from agents,
    spec files and users, so control characters are made visible (``core.text.terminal_safe``)."""
    click.echo(terminal_safe(message), err=err, nl=nl)
