"""The `command` harness: runs any configured command. Needs no model.

The prompt goes to the command's stdin, and its path is in ``AGILEPLUS_PROMPT_FILE``
(the runner writes it outside the worktree). Each output line is a log event.
"""

from __future__ import annotations

import shlex

from harnesses.base import AgentEvent, Availability, HarnessAdapter, HarnessError, Invocation, RunSpec
from harnesses.registry import register

PROMPT_FILE_ENV = "AGILEPLUS_PROMPT_FILE"


@register
class CommandAdapter(HarnessAdapter):
    name = "command"
    binary = "sh"
    install_hint = "set agent.command in .kittify/config.yaml"
    pinned_version = "n/a"

    def build_command(self, spec: RunSpec) -> Invocation:
        command = spec.options.get("command")
        if not command:
            raise HarnessError(
                "harness 'command' needs a command: set agent.command in .kittify/config.yaml "
                "(e.g. command: \"python3 tools/agent.py\")"
            )
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
        return Invocation(argv=argv, stdin_text=spec.prompt)

    def parse_line(self, line: str) -> list[AgentEvent]:
        return [AgentEvent(kind="log", text=line.rstrip("\n"))]

    def availability(self):
        return Availability(True, path="/bin/sh", version="n/a")


def describe(command: str | list[str]) -> str:
    return command if isinstance(command, str) else shlex.join(command)
