"""What every stand-in agent CLI shares: argv checked against the real CLI's flags, the
prompt read where the real CLI reads it, a real git commit in the working directory, and
output printed line by line.

The executables in this folder (``claude``, ``codex``, ``gemini``, ``aider``, ``opencode``)
are thin shims over ``_<name>.py``. Environment knobs:

- ``STANDIN_FILE``: the file to write and commit (default ``standin_<name>.txt``)
- ``STANDIN_MESSAGE``: the commit message (default ``feat(WP01): stand-in change``)
- ``STANDIN_ALSO``: more files (comma-separated) written and committed with it
- ``STANDIN_MALFORMED=1``: print one malformed line in the middle of the output
- ``STANDIN_RECORD``: a path; the stand-in writes ``{"argv", "stdin", "cwd"}`` there as JSON
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MESSAGE = "feat(WP01): stand-in change"
MALFORMED_LINE = '{"type": "malformed", "text": "this line was cut o'


class UsageError(Exception):
    """A command line the real CLI would refuse."""


@dataclass
class Flag:
    names: tuple[str, ...]
    value: bool = False  # takes a value
    repeat: bool = False  # may be given more than once (values collected in a list)
    variadic: bool = False  # takes every following value up to the next option
    choices: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        long = [name for name in self.names if name.startswith("--")]
        return (long or list(self.names))[0].lstrip("-").replace("-", "_")


@dataclass
class Parsed:
    options: dict = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)

    def get(self, key: str, default=None):
        return self.options.get(key, default)


def parse(argv: list[str], flags: list[Flag], *, stop_at: tuple[str, ...] = ()) -> Parsed:
    """Options anywhere, ``--flag=value`` or ``--flag value``, ``--`` ends options. Parsing
    stops at the first positional in ``stop_at`` (a subcommand), which is returned with the rest."""
    by_name = {name: flag for flag in flags for name in flag.names}
    parsed = Parsed()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            parsed.positionals += argv[i + 1:]
            break
        if arg in stop_at and not arg.startswith("-"):
            parsed.positionals += argv[i:]
            break
        if not arg.startswith("-") or arg == "-":
            parsed.positionals.append(arg)
            i += 1
            continue
        name, eq, inline = arg.partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise UsageError(f"unknown option '{name}'")
        if not flag.value:
            if eq:
                raise UsageError(f"option '{name}' takes no value")
            parsed.options[flag.key] = True
            i += 1
            continue
        if eq:
            values, i = [inline], i + 1
        else:
            i += 1
            values = []
            if not flag.variadic and i < len(argv):  # a single value is taken as is, even "-…"
                values, i = [argv[i]], i + 1
            while flag.variadic and i < len(argv) and (not argv[i].startswith("-") or argv[i] == "-"):
                values.append(argv[i])
                i += 1
            if not values:
                raise UsageError(f"option '{name}' argument missing")
        for value in values:
            if flag.choices and value not in flag.choices:
                raise UsageError(f"option '{name}' argument '{value}' is invalid. Allowed choices are "
                                 + ", ".join(flag.choices) + ".")
        if flag.repeat or flag.variadic:
            parsed.options.setdefault(flag.key, []).extend(values)
        else:
            parsed.options[flag.key] = values[0]
    return parsed


def usage_error(message: str, *, code: int = 2) -> int:
    print(message, file=sys.stderr)
    return code


def command_line(argv: list[str], flags: list[Flag], *, refused: str, version: str) -> Parsed:
    """``argv`` parsed as the real CLI parses it: one it would refuse prints ``refused`` and the
    reason and exits 2; ``--version`` prints ``version`` and exits 0."""
    try:
        args = parse(argv, flags)
    except UsageError as exc:
        print(f"{refused}{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.get("version"):
        print(version)
        raise SystemExit(0)
    return args


def read_stdin() -> str:
    if sys.stdin is None or sys.stdin.isatty():
        return ""
    return sys.stdin.read()


def record(argv: list[str], stdin: str) -> None:
    path = os.environ.get("STANDIN_RECORD")
    if path:
        Path(path).write_text(json.dumps({"argv": argv, "stdin": stdin, "cwd": os.getcwd()}))


def new_id() -> str:
    return str(uuid.uuid4())


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=check)


def in_git_repo() -> bool:
    return git("rev-parse", "--is-inside-work-tree", check=False).stdout.strip() == "true"


@dataclass
class Change:
    path: str
    content: str
    message: str


def planned_change(name: str, prompt: str) -> Change:
    path = os.environ.get("STANDIN_FILE") or f"standin_{name}.txt"
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:12]
    return Change(path, f"written by the {name} stand-in\nprompt sha256: {digest}\n",
                  os.environ.get("STANDIN_MESSAGE") or DEFAULT_MESSAGE)


def also_paths() -> list[str]:
    """STANDIN_ALSO: more files (comma-separated) written and committed with the change, e.g. the
    test file a WP that delivers ``tests`` must add beside its code."""
    return [p.strip() for p in os.environ.get("STANDIN_ALSO", "").split(",") if p.strip()]


def write(change: Change) -> None:
    for path in [change.path, *also_paths()]:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(change.content)


def commit(change: Change) -> tuple[bool, str, str]:
    """``git add`` + ``git commit`` the change: (ok, git's output, short sha)."""
    added = git("add", "--", change.path, *also_paths(), check=False)
    if added.returncode:
        return False, added.stderr.strip(), ""
    identity: list[str] = []
    if not git("config", "user.email", check=False).stdout.strip() and "GIT_COMMITTER_EMAIL" not in os.environ:
        identity = ["-c", "user.name=Stand-in agent", "-c", "user.email=standin@localhost"]
    done = git(*identity, "commit", "-m", change.message, check=False)
    if done.returncode:
        return False, (done.stdout + done.stderr).strip(), ""
    return True, done.stdout.strip(), git("rev-parse", "--short=7", "HEAD").stdout.strip()


def emit(lines: list[str]) -> None:
    """Print ``lines`` (one malformed line in the middle with STANDIN_MALFORMED=1)."""
    lines = list(lines)
    if os.environ.get("STANDIN_MALFORMED") == "1":
        lines.insert(len(lines) // 2, MALFORMED_LINE)
    for line in lines:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def dumps(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))
