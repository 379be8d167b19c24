"""The `opencode` harness: opencode's non-interactive ``run`` with raw JSON events.

    opencode run --format json [-m PROVIDER/MODEL] [--agent NAME] [--session ID]
                 [--dangerously-skip-permissions]

The prompt goes on stdin: ``opencode run`` appends piped stdin to its message, while a
message given as arguments is re-joined with quotes added around words with spaces. The
model must be ``provider/model`` (``anthropic/claude-sonnet-4-5``). In ``run`` mode file
edits are allowed and permission questions are rejected; ``skip_permissions: true`` answers
them yes instead (only where the worker is itself the sandbox).

Options: ``agent``, ``variant``, ``skip_permissions``, ``extra_args``.

Model endpoint: ``ANTHROPIC_BASE_URL`` in the worker's environment (with ``ANTHROPIC_API_KEY``)
becomes the ``anthropic`` provider's ``baseURL`` through ``OPENCODE_CONFIG_CONTENT`` (opencode
merges it over its other config); ``OPENAI_BASE_URL`` likewise for the ``openai`` provider.

Events (``packages/opencode/src/cli/cmd/run.ts``), each with ``type``, ``timestamp`` and
``sessionID``: ``step_start``; ``text`` and ``reasoning`` (``part.text``); ``tool_use``
(``part.tool``, ``part.state`` with ``status`` completed|error, ``input``, ``output``,
``title``), emitted when the tool finishes; ``step_finish`` (``part.reason`` ``tool-calls``
or ``stop``, ``part.cost`` in USD, ``part.tokens`` with ``input`` (uncached), ``output``,
``reasoning``, ``cache.read``, ``cache.write``) and ``error`` (``error.name``,
``error.data.message``). Tokens and cost are per step: they are added up, and each
``step_finish`` carries the run's totals so far; the one with reason ``stop`` is the result.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

from harnesses.base import AgentEvent, HarnessAdapter, HarnessError, Invocation, RunSpec, Usage
from harnesses.jsonlines import as_decimal, as_int, mapping, one_line, parse_json_line, string_list, tool_input_summary
from harnesses.registry import register


@register
class OpencodeAdapter(HarnessAdapter):
    name = "opencode"
    binary = "opencode"
    install_hint = "npm install -g opencode-ai (or: curl -fsSL https://opencode.ai/install | bash)"
    credential_env = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "GEMINI_API_KEY",
                      "OPENROUTER_API_KEY")
    credential_files = ("~/.local/share/opencode/auth.json",)
    # ``opencode run --session ID`` (1.18.33) reads the session from ``~/.local/share/opencode/opencode.db``
    # (SQLite, WAL) and runs it in the directory recorded with it, not the current one: restored on
    # another worker, the session is first moved to the new worktree (``adopt_session``).
    resumes = True
    session_databases = ("opencode.db",)

    def session_folder(self, workdir: Path) -> str | None:
        return ".local/share/opencode"

    def adopt_session(self, folder: Path, workdir: Path, session_id: str) -> None:
        """Record ``workdir`` as the restored session's directory (the old worktree is another
        worker's). The database came from the agent: its schema's functions are not trusted."""
        database = folder / "opencode.db"
        if not database.is_file() or database.is_symlink():
            return
        connection = sqlite3.connect(database)
        try:
            connection.execute("PRAGMA trusted_schema = OFF")
            connection.execute("UPDATE session SET directory = ? WHERE id = ?", (str(workdir), session_id))
            connection.commit()
        except sqlite3.DatabaseError as exc:
            raise HarnessError(f"harness 'opencode': the restored session database cannot be read: {exc}") from None
        finally:
            connection.close()

    def __init__(self) -> None:
        self.session: str | None = None
        self.usage = Usage(cost_usd=Decimal(0))
        self.last_text = ""

    def build_command(self, spec: RunSpec) -> Invocation:
        options = spec.options
        argv = [self.resolve_binary(spec), "run", "--format", "json"]
        if spec.model:
            argv += ["-m", spec.model]
        argv += spec.value_flags({"agent": "--agent", "variant": "--variant"})
        if spec.resume_session:
            argv += ["--session", spec.resume_session]
        if options.get("skip_permissions"):
            argv.append("--dangerously-skip-permissions")
        argv += string_list(options.get("extra_args"))
        providers = {name: {"options": {"baseURL": f"{spec.env[var].rstrip('/')}/v1"}}
                     for name, var in (("anthropic", "ANTHROPIC_BASE_URL"), ("openai", "OPENAI_BASE_URL"))
                     if spec.env.get(var)}
        # No undo snapshots (a git copy of the worktree in the session folder, which a worker would
        # carry to the next for nothing: the work is in the WP's commits).
        config = {"snapshot": False, **({"provider": providers} if providers else {})}
        env = {"OPENCODE_CONFIG_CONTENT": json.dumps(config)}
        return Invocation(argv=argv, stdin_text=spec.prompt, env=env)

    def parse_line(self, line: str) -> list[AgentEvent]:
        return parse_json_line(line, self._events)

    def _events(self, obj: dict) -> list[AgentEvent] | None:
        kind = obj.get("type")
        part = obj.get("part") if isinstance(obj.get("part"), dict) else {}
        session = str(obj.get("sessionID") or part.get("sessionID") or "") or None
        if kind == "step_start":
            if self.session is not None:
                return []
            self.session = session
            return [AgentEvent(kind="init", text=f"opencode session {session}", session_id=session, raw=obj)]
        if kind in ("text", "reasoning"):
            text = str(part.get("text") or "")
            if kind == "text":
                self.last_text = text
            prefix = "thinking: " if kind == "reasoning" else ""
            return [AgentEvent(kind="message", text=prefix + one_line(text), raw=obj)] if text.strip() else []
        if kind == "tool_use":
            state = part.get("state") if isinstance(part.get("state"), dict) else {}
            tool = str(part.get("tool") or "tool")
            failed = state.get("status") == "error"
            detail = one_line(state.get("error")) if failed else one_line(state.get("title")) or tool_input_summary(
                state.get("input"))
            return [AgentEvent(kind="tool_use", text=f"{tool}: {detail}" if detail else tool, is_error=failed,
                               raw=obj, tool=tool, tool_input=mapping(state.get("input")))]
        if kind == "step_finish":
            return [self._step_finish(part, obj)]
        if kind == "error":
            error = obj.get("error") if isinstance(obj.get("error"), dict) else {}
            data = error.get("data") if isinstance(error.get("data"), dict) else {}
            text = one_line(data.get("message")) or str(error.get("name") or "error")
            return [AgentEvent(kind="error", text=text, is_error=True, raw=obj)]
        return None

    def _step_finish(self, part: dict, obj: dict) -> AgentEvent:
        tokens = part.get("tokens") if isinstance(part.get("tokens"), dict) else {}
        cache = tokens.get("cache") if isinstance(tokens.get("cache"), dict) else {}
        read, write = as_int(cache.get("read")), as_int(cache.get("write"))
        self.usage.input_tokens += as_int(tokens.get("input")) + read + write
        self.usage.cached_input_tokens += read
        self.usage.output_tokens += as_int(tokens.get("output"))
        self.usage.cost_usd = (self.usage.cost_usd or Decimal(0)) + (as_decimal(part.get("cost")) or Decimal(0))
        snapshot = Usage(**vars(self.usage))
        if part.get("reason") == "stop":
            return AgentEvent(kind="result", text=one_line(self.last_text) or "done", session_id=self.session,
                              usage=snapshot, final=True, raw=obj)
        return AgentEvent(kind="usage", usage=snapshot, raw=obj)
