"""Every `agileplus` command in README.md, docs/*.md and examples/README.md names commands and
options the CLI has, and parses as the CLI parses it (no "unexpected extra argument", no
"No such option"). Running them against a real farm: tests/integration/firsthour/test_documented_commands_run.py."""

from __future__ import annotations

import pytest

from tests.support.docs import DocCommand, concrete_args, documented_commands, resolve

COMMANDS = documented_commands()


def test_the_documents_show_commands():
    assert len(COMMANDS) > 30 and any(c.is_synopsis for c in COMMANDS) and any(not c.is_synopsis for c in COMMANDS)


@pytest.mark.parametrize("doc", COMMANDS, ids=str)
def test_a_documented_command_parses(doc: DocCommand):
    for args, complete in concrete_args(doc):
        command, rest = resolve(list(args))
        if complete and not (doc.names_only and not rest):
            command.make_context(command.name, rest, resilient_parsing=False)  # raises UsageError
