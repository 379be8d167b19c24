"""The agent's tool uses as a person reads them: the one mapping from what a CLI's stream says it
did (Write/Edit/Read/Bash… in each CLI's names) to the example's activity lines:

    Reading specification: spec.md (2.1 KB)
    Created src/handlers/login.rs (245 lines)
    Running cargo test locally...

Each adapter names the tool and its input on its ``tool_use`` events (``AgentEvent.tool``,
``AgentEvent.tool_input``) in its CLI's words; the names are folded here into a few actions.
Paths are shown relative to the worktree. ``None``: nothing a person needs (git housekeeping,
a tool's ordinary output, the agent's plan list); the raw line stays in ``logs --raw``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from harnesses.base import AgentEvent
from harnesses.jsonlines import MALFORMED, one_line

ACTIONS = {
    "read": ("read", "read_file", "read_many_files", "view", "cat", "notebookread"),
    "write": ("write", "write_file", "create", "create_file", "add"),
    "edit": ("edit", "multiedit", "replace", "update", "str_replace", "apply_patch", "patch", "notebookedit"),
    "delete": ("delete", "remove"),
    "run": ("bash", "shell", "run_shell_command", "exec", "exec_command", "local_shell", "command"),
    "search": ("glob", "grep", "search_file_content", "list", "ls", "list_directory", "find"),
    "web": ("webfetch", "web_fetch", "websearch", "web_search", "google_web_search", "fetch"),
    "plan": ("todowrite", "todoread", "write_todos", "update_plan", "todo_list"),
}
TOOL_ACTION = {name: action for action, names in ACTIONS.items() for name in names}
PATH_KEYS = ("file_path", "filePath", "absolute_path", "path", "notebook_path")
TEST_COMMAND = re.compile(r"(^|\s|/)(pytest|cargo (test|nextest)|go test|npm (run )?test|yarn test|pnpm test|"
                          r"make (test|check)|tox|nox|jest|vitest|mvn test|gradle test|ctest|rspec|"
                          r"python3? -m (pytest|unittest)|manage\.py test)(\s|$)")
QUIET_GIT = re.compile(r"^git (add|status|diff|log|show|rev-parse|branch|config|ls-files)(\s|$)")
SPEC_FILES = {"spec.md": "specification", "plan.md": "plan", "tasks.md": "tasks", "meta.json": "feature metadata"}


def activity_lines(event: AgentEvent, workdir: Path | None, files: set[str] | None = None) -> list[str] | None:
    """The readable lines for a tool event (maybe none); None for what is not a tool event (the
    agent's messages, errors, its final result), which is shown as the adapter wrote it. ``files``:
    the branch's files when the run began, and those written since (see ``_written``)."""
    if event.kind == "log" and event.tool == MALFORMED:
        return [f"Unreadable line in the CLI's stream ({len(event.text)} characters that are not a whole JSON "
                "event; `logs --raw` shows it)"]
    if event.kind == "tool_use":
        line = describe(event.tool, event.tool_input, workdir, files) if event.tool else event.text
        return [line] if line else []
    if event.kind != "tool_result":
        return None
    if event.tool == "file_change":  # Codex reports its edits as one result naming each file
        return [_changed(c, workdir) for c in (event.tool_input or {}).get("changes", []) if c.get("path")]
    return [f"Failed: {one_line(event.text.removeprefix('error: '), 160)}"] if event.is_error and event.text else []


def describe(tool: str, tool_input: dict | None, workdir: Path | None, files: set[str] | None = None) -> str | None:
    """One readable line for a tool use, or None when a person need not see it."""
    args = tool_input if isinstance(tool_input, dict) else {}
    action = TOOL_ACTION.get(tool.rsplit(".", 1)[-1].lower().replace("-", "_"))
    path = _path(args, workdir)
    if action == "read" and path:
        return _reading(path, workdir)
    if action == "write" and path:
        return _written(path, args.get("content"), workdir, files)
    if action == "edit" and path:
        return f"Edited {path}"
    if action == "delete" and path:
        return f"Deleted {path}"
    if action == "run":
        return _running(str(args.get("command") or args.get("cmd") or ""), workdir)
    if action == "search":
        return f"Searching: {one_line(args.get('pattern') or args.get('query') or path or '.', 80)}"
    if action == "web":
        return f"Looking up: {one_line(args.get('url') or args.get('query') or '', 120)}"
    if action == "plan":
        return None
    summary = one_line(next((v for v in args.values() if isinstance(v, str) and v.strip()), ""), 120)
    return f"Using {tool}" + (f": {summary}" if summary else "")


def relative(path: str, workdir: Path | None) -> str:
    """``path`` relative to the worktree when it is inside it (the worker's absolute path is no
    concern of the reader's); as given otherwise."""
    if workdir is None or not path:
        return path
    candidate = Path(path)
    if not candidate.is_absolute():
        return path
    for root in {workdir, workdir.resolve()}:
        try:
            return str(candidate.relative_to(root)) or "."
        except ValueError:
            continue
    return path


def _path(args: dict, workdir: Path | None) -> str:
    value = next((args[k] for k in PATH_KEYS if isinstance(args.get(k), str) and args[k].strip()), "")
    return relative(value.strip(), workdir)


def _on_disk(path: str, workdir: Path | None) -> Path | None:
    if workdir is None:
        return None
    target = workdir / path
    return target if target.is_file() else None


def _size(path: str, workdir: Path | None) -> str:
    found = _on_disk(path, workdir)
    if found is None:
        return ""
    size = found.stat().st_size
    return f" ({size / 1024:.1f} KB)" if size >= 1024 else f" ({size} bytes)"


def _reading(path: str, workdir: Path | None) -> str:
    name = Path(path).name
    kind = SPEC_FILES.get(name) if "kitty-specs" in Path(path).parts else None
    if kind:
        return f"Reading {kind}: {name}{_size(path, workdir)}"
    return f"Reading {path}{_size(path, workdir)}"


def _written(path: str, content: object, workdir: Path | None, files: set[str] | None = None) -> str:
    """``Created`` for a new file, ``Rewrote`` for an existing one, with its line count when the
    stream carries the content. Existing: among ``files`` (the branch's when the run began, and each
    written since), not the disk, which the CLI may have written before its stream is read; without
    ``files``, on disk."""
    existed = path in files if files is not None else _on_disk(path, workdir) is not None
    if files is not None:
        files.add(path)
    verb = "Rewrote" if existed else "Created"
    if not isinstance(content, str):
        return f"{verb} {path}"
    lines = content.count("\n") + (0 if not content or content.endswith("\n") else 1)
    return f"{verb} {path} ({lines} line{'s' if lines != 1 else ''})"


def _changed(change: dict, workdir: Path | None) -> str:
    path = relative(str(change["path"]), workdir)
    kind = str(change.get("kind") or "update")
    if kind == "add":
        found = _on_disk(path, workdir)
        if found is None:
            return f"Created {path}"
        lines = len(found.read_bytes().splitlines())
        return f"Created {path} ({lines} line{'s' if lines != 1 else ''})"
    return f"Deleted {path}" if kind == "delete" else f"Edited {path}"


def _running(command: str, workdir: Path | None) -> str | None:
    command = _unwrapped(command.strip())
    if not command:
        return None
    if QUIET_GIT.match(command) or command.startswith("git commit"):
        return None  # housekeeping; a commit is reported by the worker as `Commit: <subject>`
    first = one_line(command, 120)
    if TEST_COMMAND.search(command):
        return f"Running {first} locally..."
    return f"Running: {first}"


def _unwrapped(command: str) -> str:
    """``bash -lc 'cargo test'`` (how Codex reports a command) → ``cargo test``."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) == 3 and Path(words[0]).name in ("bash", "sh", "zsh") and words[1] in ("-c", "-lc"):
        return words[2].strip()
    return command
