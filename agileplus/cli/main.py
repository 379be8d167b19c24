"""The ``agileplus`` command: thin commands that parse, call a service, render.

Command groups live in sibling modules and register themselves on ``cli``;
``COMMAND_MODULES`` lists them. Domain errors become one clear line on stderr
and a meaningful exit code; no traceback reaches the user.
"""

from __future__ import annotations

import importlib
import os
import sys

import click
import django
from django.conf import settings
from django.db import OperationalError, ProgrammingError, connection

from agileplus.cli.output import echo, emit_error
from agileplus.core.db import has_agileplus_tables, is_embedded_sqlite, migrate_database
from agileplus.core.errors import DomainError
from agileplus.provenance.attestation import ensure_key

COMMAND_MODULES = [
    "agileplus.cli.commands_features",
    "agileplus.cli.commands_events",
    "agileplus.cli.commands_dispatch",
    "agileplus.cli.commands_jobs",
    "agileplus.cli.commands_agents",
    "agileplus.cli.commands_review",
    "agileplus.cli.commands_farm",
    "agileplus.cli.commands_live",
    "agileplus.cli.commands_costs",
    "agileplus.cli.commands_provenance",
    "agileplus.cli.commands_operations",
    "agileplus.cli.commands_candidates",
]


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")

    django.setup()


class AgilePlusGroup(click.Group):
    """Turns DomainErrors (and stray exceptions) into one line and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DomainError as exc:
            emit_error(exc, as_json=bool(ctx.meta.get("json")))
            sys.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # The reader stopped reading (`| head -1`): it has what it wanted. Point stdout at
            # /dev/null so the interpreter's final flush does not fail again, and exit quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except Exception as exc:  # noqa: BLE001 - last line of defence: no traceback reaches a user
            if _is_missing_table(exc):
                emit_error(_not_migrated(), as_json=bool(ctx.meta.get("json")))
                sys.exit(_not_migrated().exit_code)
            if settings.CLI_DEBUG:
                raise
            echo(f"error: {type(exc).__name__}: {exc} (set AGILEPLUS_DEBUG=1 for details)", err=True)
            sys.exit(1)


def _is_missing_table(exc: Exception) -> bool:
    text = str(exc)
    return isinstance(exc, (OperationalError, ProgrammingError)) and (
        "no such table" in text or ("relation" in text and "does not exist" in text))


def _not_migrated() -> DomainError:
    where = connection.settings_dict.get("NAME")
    return DomainError(f"the database {where} has no AgilePlus tables yet (or misses newer ones)",
                       field="DATABASE_URL", fix="run `agileplus init` once (it applies the migrations)")


def ensure_database(argv: list[str]) -> None:
    """First use of a data folder: the embedded SQLite database is created here, so the README's
    flows start from an empty folder. A shared database (DATABASE_URL) is migrated on purpose,
    with `agileplus init`, never as a side effect of some command."""
    if not argv or argv[0] == "init" or {"-h", "--help", "--version"} & set(argv):
        return  # help needs no database
    if is_embedded_sqlite() and not has_agileplus_tables():
        echo(f"First use of {connection.settings_dict['NAME']}: creating the database...", err=True)
        migrate_database()
        echo(init_provenance_key(), err=True)


@click.group(cls=AgilePlusGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="agileplus")
def cli() -> None:
    """AgilePlus: features and work packages implemented by AI coding agents."""


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> None:
    setup_django()
    if settings.REMOTE_URL:  # a remote farm: the same commands, over its REST API
        from agileplus.cli.remote import remote_cli  # late: httpx only for a remote farm

        remote_cli.main(args=argv, prog_name="agileplus")
        return
    _load_commands()
    ensure_database(sys.argv[1:] if argv is None else argv)
    cli.main(args=argv, prog_name="agileplus")


@cli.command()
def init() -> None:
    """Create or update the database's tables (the migrations); safe to repeat."""
    migrate_database()
    echo(f"Database ready: {connection.vendor} {connection.settings_dict['NAME']}")
    echo(init_provenance_key())


def init_provenance_key() -> str:
    """The farm's signing key (agileplus/provenance), made once with the database."""
    key, made = ensure_key()
    return f"Provenance key {'created' if made else 'kept'}: {key} (public part: `agileplus provenance key`)"


if __name__ == "__main__":
    # Run through the imported module so command modules register on the same `cli`.
    from agileplus.cli.main import main as entry

    entry()
