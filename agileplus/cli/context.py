"""Who is running the CLI, and shared options."""

from __future__ import annotations

import getpass

import click
from django.conf import settings

from agileplus.core.actors import Actor, parse_actor


def current_actor(explicit: str | None = None) -> Actor:
    """``--actor``, else ``AGILEPLUS_ACTOR``, else ``human:<login name>``."""
    value = explicit or settings.CLI_ACTOR or f"human:{getpass.getuser() or 'unknown'}"
    return parse_actor(value, field="--actor")


actor_option = click.option(
    "--actor", "actor", default=None, help="Who acts, kind:name (default: $AGILEPLUS_ACTOR or human:$USER)"
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON")
