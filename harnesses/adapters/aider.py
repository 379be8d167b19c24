"""The `aider` harness: Aider with one message, then exit.

    aider --yes-always --no-pretty --no-stream --auto-commits --no-check-update
          --no-show-release-notes --no-analytics --no-gitignore
          --chat-history-file /dev/null --input-history-file /dev/null
          [--model MODEL] --message-file <prompt file>

The runner writes the prompt to a file outside the worktree (``AGILEPLUS_PROMPT_FILE``);
without one the prompt goes as ``--message``. ``--no-gitignore`` and the history files on
/dev/null keep Aider from adding its own files to the worktree; ``--auto-commits`` makes it
commit each edit (with a message its weak model writes).

Options: ``files`` (added to the chat), ``read`` (read-only files), ``edit_format``,
``extra_args``.

Aider prints no JSON. Each stdout line is a log event, except:

- ``Tokens: 12k sent, 2.5k cache write, 8.1k cache hit, 345 received. Cost: $0.01 message,
  $0.05 session.`` (the cost part on its own line when there are both cache writes and
  hits, absent when Aider does not know the model's price): a ``usage`` event with the run's
  totals so far. Counts are Aider's rounded ones (``1.2k``); ``sent`` is taken as all input
  and ``cache hit`` as its cached part; the cost is the session cost Aider reports.
- ``Commit 1a2b3c4 feat: message``: a ``message`` event (the runner reads commits from git).
"""

from __future__ import annotations

import os
import re
from decimal import Decimal

from harnesses.adapters.command import PROMPT_FILE_ENV
from harnesses.base import AgentEvent, HarnessAdapter, Invocation, RunSpec, Usage
from harnesses.jsonlines import as_decimal, log_event, string_list
from harnesses.registry import register

_COUNT = r"[\d.,]+[kKmM]?"
TOKENS = re.compile(
    rf"^Tokens: (?P<sent>{_COUNT}) sent"
    rf"(?:, (?P<write>{_COUNT}) cache write)?"
    rf"(?:, (?P<hit>{_COUNT}) cache hit)?"
    rf", (?P<received>{_COUNT}) received\.(?P<rest>.*)$"
)
COST = re.compile(r"Cost: \$(?P<message>[\d.,]+) message, \$(?P<session>[\d.,]+) session\.")
COMMIT = re.compile(r"^Commit (?P<sha>[0-9a-f]{7,40}) (?P<message>.+)$")
FIXED_ARGS = ("--yes-always", "--no-pretty", "--no-stream", "--auto-commits", "--no-check-update",
              "--no-show-release-notes", "--no-analytics", "--no-gitignore",
              "--chat-history-file", os.devnull, "--input-history-file", os.devnull)


def count(text: str | None) -> int:
    """Aider's token counts: ``345``, ``1.2k``, ``12k``, ``1,234``, ``1.5M``."""
    if not text:
        return 0
    text = text.replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    number = text[:-1] if scale != 1 else text
    try:
        return int(Decimal(number) * scale)
    except ArithmeticError:
        return 0


@register
class AiderAdapter(HarnessAdapter):
    name = "aider"
    binary = "aider"
    install_hint = "python -m pip install aider-install && aider-install (or: pipx install aider-chat)"
    credential_env = ("OPENAI_API_KEY", "OPENAI_API_BASE", "ANTHROPIC_API_KEY")

    def __init__(self) -> None:
        self.usage = Usage()

    def build_command(self, spec: RunSpec) -> Invocation:
        options = spec.options
        argv = [self.resolve_binary(spec), *FIXED_ARGS]
        if spec.model:
            argv += ["--model", spec.model]
        if options.get("edit_format"):
            argv += ["--edit-format", str(options["edit_format"])]
        for path in string_list(options.get("read")):
            argv += ["--read", path]
        for path in string_list(options.get("files")):
            argv += ["--file", path]
        argv += string_list(options.get("extra_args"))
        prompt_file = spec.env.get(PROMPT_FILE_ENV)
        argv += ["--message-file", prompt_file] if prompt_file else ["--message", spec.prompt]
        return Invocation(argv=argv)

    def parse_line(self, line: str) -> list[AgentEvent]:
        text = line.rstrip("\r\n")
        try:
            return self._events(text)
        except Exception:  # never lose a run over a line
            return [log_event(text)]

    def _events(self, text: str) -> list[AgentEvent]:
        if not text.strip():
            return []
        tokens = TOKENS.match(text)
        if tokens:
            self.usage.input_tokens += count(tokens["sent"])
            self.usage.cached_input_tokens += count(tokens["hit"])
            self.usage.output_tokens += count(tokens["received"])
            self._cost(tokens["rest"])
            return [self._usage_event(text)]
        if text.startswith("Cost: ") and self._cost(text):
            return [self._usage_event(text)]
        commit = COMMIT.match(text)
        if commit:
            return [AgentEvent(kind="message", text=text)]
        return [log_event(text)]

    def _cost(self, text: str) -> bool:
        found = COST.search(text or "")
        if found:
            self.usage.cost_usd = as_decimal(found["session"].replace(",", ""))
        return bool(found)

    def _usage_event(self, text: str) -> AgentEvent:
        snapshot = Usage(**vars(self.usage))
        return AgentEvent(kind="usage", text=text, usage=snapshot)
