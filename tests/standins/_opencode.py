"""Stand-in for ``opencode run`` with ``--format json``.

The message is the positional words (re-joined, words with spaces quoted, as the real CLI
does) plus piped stdin. Refuses unknown options; a model must be ``provider/model`` (else an
``error`` event, as the real provider lookup fails). Prints the JSON events: step_start,
text, tool_use (write, bash), step_finish per step with its cost and tokens.
"""

from __future__ import annotations

import sys
import time

from _common import Flag, UsageError, commit, dumps, emit, new_id, parse, planned_change, read_stdin, record, write

VERSION = "1.0.55"
STEPS = [  # (reason, cost, tokens) of each step, fixed so tests can assert the totals
    ("tool-calls", 0.0031, {"input": 1200, "output": 310, "reasoning": 0, "cache": {"read": 9000, "write": 2100}}),
    ("stop", 0.0012, {"input": 150, "output": 60, "reasoning": 0, "cache": {"read": 11000, "write": 0}}),
]
FLAGS = [
    Flag(("--command",), value=True),
    Flag(("-c", "--continue")),
    Flag(("-s", "--session"), value=True),
    Flag(("--fork",)),
    Flag(("--share",)),
    Flag(("-m", "--model"), value=True),
    Flag(("--agent",), value=True),
    Flag(("--format",), value=True, choices=("default", "json")),
    Flag(("-f", "--file"), value=True, variadic=True),
    Flag(("--title",), value=True),
    Flag(("--attach",), value=True),
    Flag(("-p", "--password"), value=True),
    Flag(("--dir",), value=True),
    Flag(("--port",), value=True),
    Flag(("--variant",), value=True),
    Flag(("--thinking",)),
    Flag(("-i", "--interactive")),
    Flag(("--dangerously-skip-permissions",)),
    Flag(("--print-logs",)),
    Flag(("--log-level",), value=True, choices=("DEBUG", "INFO", "WARN", "ERROR")),
    Flag(("-h", "--help")),
]


def main(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["-v"]):
        print(VERSION)
        return 0
    if argv[:1] != ["run"]:
        print("error: this stand-in only runs `opencode run`", file=sys.stderr)
        return 2
    try:
        args = parse(argv[1:], FLAGS)
    except UsageError as exc:
        print(f"opencode run [message..]\n\n{exc}", file=sys.stderr)
        return 2
    stdin = read_stdin()
    record(argv, stdin)
    message = " ".join(f'"{w}"' if " " in w else w for w in args.positionals)
    if stdin:
        message += "\n" + stdin
    if not message.strip() and not args.get("command"):
        print("Error: You must provide a message or a command", file=sys.stderr)
        return 1
    session = args.get("session") or f"ses_{new_id().replace('-', '')[:26]}"
    model = args.get("model")

    def event(kind: str, **part) -> dict:
        part = {"id": f"prt_{new_id().replace('-', '')[:26]}", "sessionID": session,
                "messageID": f"msg_{new_id().replace('-', '')[:26]}", **part}
        return {"type": kind, "timestamp": int(time.time() * 1000), "sessionID": session, "part": part}

    def step_finish(index: int) -> dict:
        reason, cost, tokens = STEPS[index]
        return event("step_finish", type="step-finish", reason=reason, snapshot=new_id().replace("-", ""),
                     cost=cost, tokens=tokens)

    if model is not None and "/" not in model:
        error = {"name": "ProviderModelNotFoundError", "data": {"providerID": model, "modelID": "",
                                                                "message": f"Model not found: {model}/"}}
        emit([dumps({"type": "error", "timestamp": int(time.time() * 1000), "sessionID": session, "error": error})])
        return 1
    change = planned_change("opencode", message)
    events = [event("step_start", type="step-start", snapshot=new_id().replace("-", "")),
              event("text", type="text", text=f"I'll create {change.path} and commit it.")]
    write(change)
    events.append(event("tool_use", type="tool", callID=new_id()[:16], tool="write",
                        state={"status": "completed", "input": {"filePath": change.path, "content": change.content},
                               "output": "", "title": change.path, "metadata": {}}))
    command = f'git add {change.path} && git commit -m "{change.message}"'
    ok, out, short = commit(change)
    events.append(event("tool_use", type="tool", callID=new_id()[:16], tool="bash",
                        state={"status": "completed", "input": {"command": command, "description": "Commit"},
                               "output": out, "title": "Commit", "metadata": {"exit": 0 if ok else 1}}))
    events.append(step_finish(0))
    events.append(event("step_start", type="step-start", snapshot=new_id().replace("-", "")))
    events.append(event("text", type="text", text=f"Committed {change.path} ({short})." if ok else "Commit failed."))
    events.append(step_finish(1))
    if args.get("format") == "json":
        emit([dumps(e) for e in events])
    else:
        emit([e["part"]["text"] for e in events if e["type"] == "text"])
    return 0
