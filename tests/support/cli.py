"""Run the ``agileplus`` CLI in-process, as a user would type it."""

from __future__ import annotations

import shlex

from click.testing import CliRunner, Result

from agileplus.cli import main as cli_main


def run_cli(command: str | list[str], *, input: str | None = None) -> Result:
    cli_main._load_commands()
    args = shlex.split(command) if isinstance(command, str) else command
    return CliRunner().invoke(cli_main.cli, args, input=input, catch_exceptions=False)
