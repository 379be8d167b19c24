"""Stand-in for ``codex exec`` (OpenAI Codex CLI) with ``--json``.

Accepts ``codex exec [OPTIONS] [resume SESSION_ID] [PROMPT | -]`` (``-`` or no prompt: read
stdin) and refuses unknown options like clap does (exit 2). Applies the sandbox as the real
one would for this task: ``read-only`` (the default) refuses the edit; ``workspace-write``
allows the edit in the working directory but keeps git metadata read-only unless the git dir
is granted with ``--add-dir`` (or ``sandbox_workspace_write.writable_roots``), so the commit
fails on ``index.lock`` otherwise; ``danger-full-access`` allows all. Prints the JSONL events
(thread.started, turn.started, item.*, turn.completed with usage).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from _common import (
    Flag,
    UsageError,
    commit,
    dumps,
    emit,
    git,
    in_git_repo,
    new_id,
    parse,
    planned_change,
    read_stdin,
    record,
    write,
)

VERSION = "codex-cli 0.58.0"
USAGE = {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 1222, "reasoning_output_tokens": 384}
SANDBOXES = ("read-only", "workspace-write", "danger-full-access")
EXEC_FLAGS = [
    Flag(("--json", "--experimental-json")),
    Flag(("-m", "--model"), value=True),
    Flag(("-s", "--sandbox"), value=True, choices=SANDBOXES),
    Flag(("--full-auto",)),
    Flag(("--dangerously-bypass-approvals-and-sandbox", "--yolo")),
    Flag(("-C", "--cd"), value=True),
    Flag(("--skip-git-repo-check",)),
    Flag(("-c", "--config"), value=True, repeat=True),
    Flag(("-p", "--profile"), value=True),
    Flag(("-i", "--image"), value=True, repeat=True),
    Flag(("--oss",)),
    Flag(("--add-dir",), value=True, repeat=True),
    Flag(("--ephemeral",)),
    Flag(("-o", "--output-last-message"), value=True),
    Flag(("--output-schema",), value=True),
    Flag(("--color",), value=True, choices=("always", "never", "auto")),
    Flag(("-h", "--help")),
]
RESUME_FLAGS = [Flag(("--last",)), Flag(("-h", "--help"))]


def clap_error(message: str) -> int:
    print(f"error: {message}\n\nUsage: codex exec [OPTIONS] [PROMPT]\n\nFor more information, try '--help'.",
          file=sys.stderr)
    return 2


def writable_roots(args) -> list[Path]:
    roots = [Path(d).resolve() for d in args.get("add_dir", [])]
    for override in args.get("config", []):
        key, _, value = override.partition("=")
        if key.strip() == "sandbox_workspace_write.writable_roots":
            with contextlib.suppress(ValueError, TypeError):
                roots += [Path(d).resolve() for d in json.loads(value)]
    return roots


def git_dir_writable(roots: list[Path]) -> tuple[bool, Path]:
    gitdir = Path(git("rev-parse", "--absolute-git-dir").stdout.strip()).resolve()
    common = Path(git("rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip()).resolve()
    ok = all(any(d.is_relative_to(root) for root in roots) for d in (gitdir, common))
    return ok, gitdir


def more_turns(turns: int, delay: float) -> None:
    """Turns 2..N of a long session (STANDIN_TURNS), each ending with the thread's cumulative usage."""
    for turn in range(2, turns + 1):
        time.sleep(delay)
        usage = {key: value * turn for key, value in USAGE.items()}
        emit([dumps({"type": "turn.started"}),
              dumps({"type": "item.completed", "item": {"id": f"item_t{turn}", "type": "agent_message",
                                                        "text": f"Turn {turn}: still working"}}),
              dumps({"type": "turn.completed", "usage": usage})])


def main(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["-V"]):
        print(VERSION)
        return 0
    if not argv or argv[0] not in ("exec", "e"):
        return clap_error("this stand-in only runs `codex exec`")
    try:
        args = parse(argv[1:], EXEC_FLAGS, stop_at=("resume",))
        resume = None
        positionals = args.positionals
        if positionals[:1] == ["resume"]:
            sub = parse(positionals[1:], RESUME_FLAGS)
            positionals = sub.positionals
            resume = "last" if sub.get("last") else (positionals.pop(0) if positionals else None)
            if resume is None:
                raise UsageError("resume needs a SESSION_ID or --last")
    except UsageError as exc:
        message = str(exc)
        if message.startswith("unknown option"):
            message = message.replace("unknown option", "unexpected argument") + " found"
        return clap_error(message)
    if len(positionals) > 1:
        return clap_error(f"unexpected argument '{positionals[1]}' found")
    if args.get("cd"):
        try:
            os.chdir(args.get("cd"))
        except OSError as exc:
            print(f"Error: cannot change to {args.get('cd')}: {exc}", file=sys.stderr)
            return 1
    stdin = read_stdin() if not positionals or positionals[0] == "-" else ""
    record(argv, stdin)
    prompt = stdin if not positionals or positionals[0] == "-" else positionals[0]
    if not prompt.strip():
        print("No prompt provided. Either specify one as an argument or pipe the prompt into stdin.",
              file=sys.stderr)
        return 1
    if not in_git_repo() and not args.get("skip_git_repo_check"):
        print("Not inside a trusted directory and --skip-git-repo-check was not specified.", file=sys.stderr)
        return 1
    if args.get("dangerously_bypass_approvals_and_sandbox"):
        sandbox = "danger-full-access"
    else:
        sandbox = args.get("sandbox") or ("workspace-write" if args.get("full_auto") else "read-only")
    if args.get("full_auto"):
        print("warning: --full-auto is deprecated; use --sandbox workspace-write instead.", file=sys.stderr)

    thread = resume if resume and resume != "last" else new_id()
    if os.environ.get("STANDIN_RATE_LIMIT") == "1":  # what codex prints when the API keeps answering 429
        message = "exceeded retry limit, last status: 429 Too Many Requests"
        emit([dumps({"type": "thread.started", "thread_id": thread}), dumps({"type": "turn.started"}),
              dumps({"type": "error", "message": message}),
              dumps({"type": "turn.failed", "error": {"message": message}})])
        return 1
    change = planned_change("codex", prompt)
    counter = iter(range(100))
    events: list[dict] = [{"type": "thread.started", "thread_id": thread}, {"type": "turn.started"}]

    def item(phase: str, **fields) -> dict:
        events.append({"type": f"item.{phase}", "item": fields})
        return fields

    item("completed", id=f"item_{next(counter)}", type="reasoning", text="**Planning the change and the commit**")
    if sandbox == "read-only":
        item("completed", id=f"item_{next(counter)}", type="file_change",
             changes=[{"path": change.path, "kind": "add"}], status="failed")
        final = "I could not write the file: the sandbox is read-only."
    else:
        write(change)
        item("completed", id=f"item_{next(counter)}", type="file_change",
             changes=[{"path": change.path, "kind": "add"}], status="completed")
        command = f"bash -lc 'git add {change.path} && git commit -m \"{change.message}\"'"
        cmd_id = f"item_{next(counter)}"
        item("started", id=cmd_id, type="command_execution", command=command, aggregated_output="",
             exit_code=None, status="in_progress")
        writable, gitdir = (True, None) if sandbox == "danger-full-access" else git_dir_writable(writable_roots(args))
        if not writable:
            output = f"fatal: Unable to create '{gitdir}/index.lock': Operation not permitted\n"
            item("completed", id=cmd_id, type="command_execution", command=command, aggregated_output=output,
                 exit_code=128, status="failed")
            final = f"I wrote {change.path} but the sandbox kept me from committing it."
        else:
            ok, out, short = commit(change)
            item("completed", id=cmd_id, type="command_execution", command=command, aggregated_output=out + "\n",
                 exit_code=0 if ok else 1, status="completed" if ok else "failed")
            final = f"Committed {change.path} ({short})." if ok else "The commit failed."
    item("completed", id=f"item_{next(counter)}", type="agent_message", text=final)
    events.append({"type": "turn.completed", "usage": USAGE})
    if args.get("output_last_message"):
        Path(args.get("output_last_message")).write_text(final)
    if args.get("json"):
        emit([dumps(e) for e in events])
        more_turns(int(os.environ.get("STANDIN_TURNS", "1")), float(os.environ.get("STANDIN_TURN_DELAY", "0")))
    else:
        print(f"[codex] thread {thread}, sandbox {sandbox}", file=sys.stderr)
        emit([final])
    return 0
