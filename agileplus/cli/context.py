"""Who is running the CLI, and shared options."""

from __future__ import annotations

import getpass

import click
from django.conf import settings

from agileplus.cli.output import mark_json
from agileplus.core.actors import Actor, parse_actor
from agileplus.core.errors import DomainError


def current_actor(explicit: str | None = None) -> Actor:
    """``--actor``, else ``AGILEPLUS_ACTOR``, else ``human:<login name>``."""
    value = explicit or settings.CLI_ACTOR or f"human:{getpass.getuser() or 'unknown'}"
    return parse_actor(value, field="--actor")


actor_option = click.option(
    "--actor", "actor", default=None, help="Who acts, kind:name (default: $AGILEPLUS_ACTOR or human:$USER)"
)


def _wants_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:  # errors too are JSON from here on (``main``'s handler reads the mark)
        mark_json(ctx)
    return value


json_option = click.option("--json", "as_json", is_flag=True, callback=_wants_json,
                           help="Print machine-readable JSON (errors too)")


def feature_and_wp(refs: tuple[str, ...], feature_option: str | None = None) -> tuple[str | None, str]:
    """``[FEATURE] WP`` as typed: ``logs 003 WP02`` and ``logs WP02`` (``--feature 003``) are one form."""
    if len(refs) == 1:
        return feature_option, refs[0]
    if len(refs) == 2 and not (feature_option and feature_option != refs[0]):
        return refs[0], refs[1]
    raise DomainError(f"expected [FEATURE] WP, got {' '.join(refs) or 'nothing'}", field="WP",
                      fix="e.g. `003 WP02` or `WP02` (when the WP code is unique)")
