"""The one interface every agent adapter implements.

An adapter is pure translation: from a ``RunSpec`` to a command line, and from
the CLI's output lines to ``AgentEvent``s. Running the process, the worktree,
timeouts and reporting belong to the dispatch runner, the same for every agent.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

# The pinned agent CLIs `scripts/install-agent-clis` installs (tools/agent-clis), each harness's
# executable in there (opencode: its Linux x64 binary package).
PINNED_DIR = Path(__file__).resolve().parents[1] / "tools" / "agent-clis"
PINNED_PATHS = {
    "claude-code": "node_modules/.bin/claude",
    "codex": "node_modules/.bin/codex",
    "gemini": "node_modules/.bin/gemini",
    "opencode": "node_modules/opencode-linux-x64/bin/opencode",
    "aider": "aider-venv/bin/aider",
}


@dataclass
class Usage:
    """Token and cost figures as the CLI reports them (cost only where the CLI gives it)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: Decimal | None = None
    turns: int | None = None

    def as_dict(self) -> dict:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "turns": self.turns,
        }


@dataclass
class AgentEvent:
    """One thing the agent said. ``kind``: init | message | tool_use | tool_result | usage |
    result | error | log (unparsed or malformed line, kept verbatim)."""

    kind: str
    text: str = ""
    session_id: str | None = None
    model: str | None = None
    usage: Usage | None = None
    is_error: bool = False
    final: bool = False
    raw: dict | None = None
    # A tool use's name and input in the CLI's own words: ``harnesses.activity`` makes the readable line.
    tool: str | None = None
    tool_input: dict | None = None


@dataclass
class RunSpec:
    prompt: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    timeout_seconds: int = 3600
    allowed_paths: list[str] = field(default_factory=list)
    forbidden_paths: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)  # adapter-specific config (e.g. the command to run)
    resume_session: str | None = None
    # The session folder (``session_folder``) as the agent sees it, in the sandbox's HOME, when the
    # worker keeps it for a next attempt; None when it does not (no sandbox). For a CLI that must be
    # told where to write its session (Aider's history file): the others find their HOME themselves.
    session_dir: str | None = None

    def value_flags(self, flags: dict[str, str]) -> list[str]:
        """``flag value`` for each option named in ``flags`` (option → flag) that is set, in that order."""
        return [arg for option, flag in flags.items() if self.options.get(option)
                for arg in (flag, str(self.options[option]))]


@dataclass
class Invocation:
    argv: list[str]
    stdin_text: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # added to the run environment


@dataclass
class Availability:
    available: bool
    path: str | None = None
    version: str | None = None
    reason: str = ""


class HarnessError(Exception):
    """A harness cannot run (binary missing, bad configuration). The message says how to fix it."""


class LastingSetupError(HarnessError):
    """A setup failure a retry would meet again (a secret that is not set, a secrets file others
    can read): the job fails now, saying why, instead of spending its retries."""


class HarnessAdapter(ABC):
    name: ClassVar[str]
    binary: ClassVar[str]
    install_hint: ClassVar[str] = ""
    version_args: ClassVar[tuple[str, ...]] = ("--version",)
    # The model endpoint and key the CLI reads, passed from the WORKER's environment to the
    # agent (never from the target repository's config): a worker holds its harness credentials.
    credential_env: ClassVar[tuple[str, ...]] = ()
    # Credential files in the worker's home (``~/…``) that go read-only into the sandbox's home.
    credential_files: ClassVar[tuple[str, ...]] = ()
    # Whether ``build_command`` honours ``RunSpec.resume_session`` with the session files that
    # ``session_folder`` names restored: only where that was seen working with the real CLI.
    resumes: ClassVar[bool] = False
    # SQLite databases in the session folder (relative names) the CLI writes as it runs: each is
    # captured as one consistent snapshot, not copied file by file (harnesses/sessions.py).
    session_databases: ClassVar[tuple[str, ...]] = ()
    # What the CLI writes into the repository for itself (caches), never the agent's work: left
    # out when the worker salvages uncommitted files.
    scratch_paths: ClassVar[tuple[str, ...]] = ()

    def session_folder(self, workdir: Path) -> str | None:
        """Where, relative to its HOME, this CLI keeps the session files of a run in ``workdir``
        (the worker captures that folder and restores it on another worker); None: it keeps none
        the worker can carry, so a next attempt starts a fresh session."""
        return None

    def adopt_session(self, folder: Path, workdir: Path, session_id: str) -> None:
        """After the session files are restored into ``folder``: make the session run in
        ``workdir`` (a new worktree path on another worker) where the CLI recorded the old one.
        Most CLIs look the session up by id alone: nothing to do."""
        return None

    def session_usage(self, folder: Path) -> Usage | None:
        """For a CLI whose usage figures span the whole session (earlier runs included): what the
        restored session files in ``folder`` had already used, so a resumed run is billed only its
        own turns. None: the CLI counts each run on its own."""
        return None

    @abstractmethod
    def build_command(self, spec: RunSpec) -> Invocation:
        """The argv (and stdin) that runs the agent non-interactively on ``spec``."""

    @abstractmethod
    def parse_line(self, line: str) -> list[AgentEvent]:
        """Events in one output line. Never raises: a malformed line becomes a ``log`` event."""

    @property
    def binary_variable(self) -> str:
        return f"AGILEPLUS_{self.name.upper().replace('-', '_')}_BIN"

    def resolve_binary(self, spec: RunSpec | None = None) -> str:
        """The CLI to run: the one configured (option or variable), else the one on PATH, else the
        pinned copy `scripts/install-agent-clis` installed (found with no PATH entry or variable)."""
        configured = (spec.options.get("binary") if spec else None) or os.environ.get(self.binary_variable)
        found = shutil.which(configured or self.binary) or (None if configured else pinned_binary(self.name))
        if not found:
            raise HarnessError(f"harness '{self.name}' needs the `{configured or self.binary}` executable on PATH: "
                               + self.where_to_get())
        return found

    def where_to_get(self) -> str:
        """How to get the CLI: the pinned copy `scripts/install-agent-clis` installs (named when it
        is there: a variable naming a missing binary hides it), a variable pointing at a binary, or
        the CLI's own installer."""
        pinned = PINNED_DIR / PINNED_PATHS[self.name] if self.name in PINNED_PATHS else None
        if pinned is not None and pinned_binary(self.name):
            hint = (f"the pinned CLI is installed at {pinned}: unset {self.binary_variable} to use it, or export "
                    f"{self.binary_variable}={pinned}")
        elif pinned is not None:
            hint = (f"install the pinned version with ./scripts/install-agent-clis (then found without PATH or "
                    f"variable), or export {self.binary_variable}=/path/to/{self.binary}")
        else:
            hint = f"export {self.binary_variable}=/path/to/{self.binary}"
        return hint + (f", or {self.install_hint}" if self.install_hint else "")

    def availability(self) -> Availability:
        try:
            path = self.resolve_binary()
        except HarnessError as exc:
            return Availability(False, reason=str(exc))
        try:
            version = cli_version(path, self.version_args)
        except (OSError, subprocess.SubprocessError) as exc:
            return Availability(False, path=path, reason=f"`{path} --version` failed: {exc}")
        return Availability(True, path=path, version=version)


def pinned_binary(harness: str) -> str | None:
    """The pinned CLI of ``harness`` that `scripts/install-agent-clis` installed, if it is there."""
    relative = PINNED_PATHS.get(harness)
    path = PINNED_DIR / relative if relative else None
    return str(path) if path is not None and os.access(path, os.X_OK) and path.is_file() else None


def cli_version(path: str, version_args: tuple[str, ...] = ("--version",)) -> str | None:
    """The first line ``path --version`` prints, cached per binary file (path, size, mtime):
    a worker asks once, and again only after the CLI is upgraded in place."""
    st = os.stat(path)
    return _cli_version(os.path.realpath(path), tuple(version_args), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cli_version(path: str, version_args: tuple[str, ...], size: int, mtime_ns: int) -> str | None:
    out = subprocess.run([path, *version_args], capture_output=True, text=True, timeout=30)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None
