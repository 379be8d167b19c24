"""The `aider` harness: Aider with one message, then exit.

    aider --yes-always --no-pretty --no-stream --auto-commits --no-check-update
          --no-show-release-notes --no-analytics --no-gitignore --input-history-file /dev/null
          --chat-history-file ~/.aider-sessions/SESSION.chat.history.md [--restore-chat-history]
          [--model MODEL] --message-file <prompt file>

The runner writes the prompt to a file outside the worktree (``AGILEPLUS_PROMPT_FILE``);
without one the prompt goes as ``--message``. ``--no-gitignore`` and the history files outside
the worktree keep Aider from adding its own files there; ``--auto-commits`` makes it commit
each edit (with a message its weak model writes).

Options: ``files`` (added to the chat), ``read`` (read-only files), ``edit_format``,
``extra_args``.

The session. Aider has no session id and no session store: its chat history file (Markdown:
``####`` lines are the user's messages, ``>`` lines its own output, the rest the model's
replies) is the session. Where the worker keeps the session folder (under the sandbox,
``RunSpec.session_dir`` is ``~/.aider-sessions``) the adapter names the session: a fresh run gets
a new id (a UUID) and its history goes to ``~/.aider-sessions/<id>.chat.history.md``; a resumed
run (``RunSpec.resume_session``) appends to that file, restored by the worker, and passes
``--restore-chat-history``. The id is announced as an ``init`` event with Aider's first output
line, so the worker stores and shows it. Seen with aider 0.86.2 and the scripted endpoint, the
resumed run in another worker's worktree path: Aider prints ``Restored previous conversation
history.`` and sends the earlier prompts and replies before the new message
(``Coder.__init__``, ``utils.split_chat_history_markdown``). Aider names files to the model
relative to the repository and the ``>`` lines (its command line among them) are not restored,
so a new worktree path needs nothing adopted. Restored are the prompts and the replies as Aider
wrote them: not its own output (``>`` lines: test output, applied edits, commits), not the
messages it sends itself (lint or test errors to fix, "I committed the changes"), not a reply
that never arrived (a run killed mid-call). Aider logs its command line in the history as one
``>`` line: the lines after the first of a multi-line ``--message`` would come back as a model
reply, which is why the prompt goes as ``--message-file``. Without a session folder
(``AGILEPLUS_SANDBOX=off``) both history files are /dev/null and no id is announced: a next
attempt starts fresh.

Aider prints no JSON. Each stdout line is a log event, except:

- ``Tokens: 12k sent, 2.5k cache write, 8.1k cache hit, 345 received. Cost: $0.01 message,
  $0.05 session.`` (the cost part on its own line when there are both cache writes and
  hits, absent when Aider does not know the model's price): a ``usage`` event with the run's
  totals so far. Counts are Aider's rounded ones (``1.2k``); ``sent`` is taken as all input
  and ``cache hit`` as its cached part; the cost is the session cost Aider reports. That is
  the process's own: ``Coder.total_cost`` starts at 0 in each ``aider`` process and the restored
  history carries no cost, so a resumed run is billed only its own calls (no ``session_usage``).
- ``Commit 1a2b3c4 feat: message``: a ``message`` event (the runner reads commits from git).
"""

from __future__ import annotations

import os
import re
import uuid
from decimal import Decimal
from pathlib import Path

from harnesses.adapters.command import PROMPT_FILE_ENV
from harnesses.base import AgentEvent, HarnessAdapter, HarnessError, Invocation, RunSpec, Usage
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
              "--no-show-release-notes", "--no-analytics", "--no-gitignore", "--input-history-file", os.devnull)
SESSION_FOLDER = ".aider-sessions"
# The ids this adapter gives (UUIDs) and nothing that could leave the session folder: the id
# comes back from the database as part of a path.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def history_file(session_dir: str, session: str) -> str:
    """The session's chat history file, as the agent sees it."""
    return f"{session_dir}/{session}.chat.history.md"


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
    credential_env = ("OPENAI_API_KEY", "OPENAI_API_BASE", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY",
                      "OPENROUTER_API_KEY")

    # Aider 0.86.2 always writes its repository map's cache at the repository root (repomap.py).
    scratch_paths = (".aider.tags.cache.v4",)
    # ``--restore-chat-history`` (0.86.2) reads the chat history file back as the conversation:
    # seen resuming from another worktree path with the real CLI (see the module docstring).
    resumes = True

    def session_folder(self, workdir: Path) -> str | None:
        return SESSION_FOLDER

    def __init__(self) -> None:
        self.usage = Usage()
        self.session: str | None = None  # the id this run's history file is named after
        self.model: str | None = None
        self.announced = False

    def build_command(self, spec: RunSpec) -> Invocation:
        options = spec.options
        self.model = spec.model
        argv = [self.resolve_binary(spec), *FIXED_ARGS, *self._history_args(spec)]
        if spec.model:
            argv += ["--model", spec.model]
        argv += spec.value_flags({"edit_format": "--edit-format"})
        for path in string_list(options.get("read")):
            argv += ["--read", path]
        for path in string_list(options.get("files")):
            argv += ["--file", path]
        argv += string_list(options.get("extra_args"))
        prompt_file = spec.env.get(PROMPT_FILE_ENV)
        argv += ["--message-file", prompt_file] if prompt_file else ["--message", spec.prompt]
        return Invocation(argv=argv)

    def _history_args(self, spec: RunSpec) -> list[str]:
        """The chat history file: the session's, read back when resuming; nowhere without a
        session folder the worker keeps."""
        if not spec.session_dir:
            self.session = None
            return ["--chat-history-file", os.devnull]
        self.session = spec.resume_session or str(uuid.uuid4())
        if not SESSION_ID.fullmatch(self.session):
            raise HarnessError(f"harness 'aider': {self.session!r} is not an aider session id")
        argv = ["--chat-history-file", history_file(spec.session_dir, self.session)]
        return [*argv, "--restore-chat-history"] if spec.resume_session else argv

    def parse_line(self, line: str) -> list[AgentEvent]:
        text = line.rstrip("\r\n")
        announced = self._announce()
        try:
            return [*announced, *self._events(text)]
        except Exception:  # never lose a run over a line
            return [*announced, log_event(text)]

    def _announce(self) -> list[AgentEvent]:
        """The session id, once, with Aider's first line: Aider prints none of its own."""
        if self.session is None or self.announced:
            return []
        self.announced = True
        return [AgentEvent(kind="init", text=f"Aider session {self.session} ({self.model or 'default model'})",
                           session_id=self.session)]

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
