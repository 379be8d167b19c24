"""Stand-in for Gemini CLI in headless mode: ``gemini -p PROMPT --output-format stream-json``.

Piped stdin goes before the ``-p`` text, as in the real CLI. Refuses unknown options and
``--yolo`` together with ``--approval-mode``. Headless runs cannot ask for approval, so the
edit (write_file) needs ``auto_edit`` or ``yolo`` and the commit (run_shell_command) needs
``yolo``; refused tools come back as error tool results. Prints the JSONL events (init,
message, tool_use, tool_result, result with stats), the single JSON object of
``--output-format json`` (indented, as the real CLI prints it) or plain text.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from _common import Flag, command_line, commit, dumps, emit, new_id, planned_change, read_stdin, record, write

VERSION = "0.15.3"
DEFAULT_MODEL = "gemini-2.5-pro"
STATS = {"total_tokens": 13950, "input_tokens": 12800, "output_tokens": 1150, "cached": 8000, "input": 4800,
         "duration_ms": 5234, "tool_calls": 2}
FLAGS = [
    Flag(("-p", "--prompt"), value=True),
    Flag(("-i", "--prompt-interactive"), value=True),
    Flag(("-o", "--output-format"), value=True, choices=("text", "json", "stream-json")),
    Flag(("-m", "--model"), value=True),
    Flag(("-y", "--yolo")),
    Flag(("--approval-mode",), value=True, choices=("default", "auto_edit", "yolo", "plan")),
    Flag(("-s", "--sandbox")),
    Flag(("-d", "--debug")),
    Flag(("-r", "--resume"), value=True),
    Flag(("--include-directories",), value=True, repeat=True),
    Flag(("--allowed-tools",), value=True, repeat=True),
    Flag(("--allowed-mcp-server-names",), value=True, repeat=True),
    Flag(("-e", "--extensions"), value=True, repeat=True),
    Flag(("--screen-reader",)),
    Flag(("--session-summary",), value=True),
    Flag(("-v", "--version")),
    Flag(("-h", "--help")),
]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main(argv: list[str]) -> int:
    args = command_line(argv, FLAGS, refused="Usage: gemini [options] [query..]\n\n", version=VERSION)
    if args.get("yolo") and args.get("approval_mode"):
        print("Cannot use both --yolo (-y) and --approval-mode together. Use --approval-mode=yolo instead.",
              file=sys.stderr)
        return 2
    stdin = read_stdin()
    record(argv, stdin)
    query = args.get("prompt") or " ".join(args.positionals)
    prompt = f"{stdin.strip()}\n\n{query}" if stdin.strip() and query else (stdin.strip() or query)
    if not prompt.strip():
        print("No input provided via stdin. Input can be provided by piping data into gemini or using the "
              "--prompt option.", file=sys.stderr)
        return 42
    approval = "yolo" if args.get("yolo") else args.get("approval_mode", "default")
    session = args.get("resume") if args.get("resume") not in (None, "latest") else new_id()
    model = args.get("model") or DEFAULT_MODEL
    change = planned_change("gemini", prompt)
    events: list[dict] = [
        {"type": "init", "timestamp": now(), "session_id": session, "model": model},
        {"type": "message", "timestamp": now(), "role": "user", "content": prompt},
        {"type": "message", "timestamp": now(), "role": "assistant", "content": "I'll create the file", "delta": True},
        {"type": "message", "timestamp": now(), "role": "assistant", "content": " and commit it.\n", "delta": True},
    ]
    write_id, shell_id = f"write_file-{new_id()[:13]}", f"run_shell_command-{new_id()[:13]}"
    events.append({"type": "tool_use", "timestamp": now(), "tool_name": "write_file", "tool_id": write_id,
                   "parameters": {"file_path": change.path, "content": change.content}})
    if approval not in ("auto_edit", "yolo"):
        events.append({"type": "tool_result", "timestamp": now(), "tool_id": write_id, "status": "error",
                       "error": {"type": "execution_denied", "message": "Tool execution denied by policy."}})
        final = "I could not write the file."
    else:
        write(change)
        events.append({"type": "tool_result", "timestamp": now(), "tool_id": write_id, "status": "success",
                       "output": f"Successfully created and wrote to new file: {change.path}."})
        command = f'git add {change.path} && git commit -m "{change.message}"'
        events.append({"type": "tool_use", "timestamp": now(), "tool_name": "run_shell_command",
                       "tool_id": shell_id, "parameters": {"command": command, "description": "Commit the change"}})
        if approval != "yolo":
            events.append({"type": "tool_result", "timestamp": now(), "tool_id": shell_id, "status": "error",
                           "error": {"type": "execution_denied", "message": "Tool execution denied by policy."}})
            final = "I wrote the file but could not commit it."
        else:
            ok, out, short = commit(change)
            events.append({"type": "tool_result", "timestamp": now(), "tool_id": shell_id,
                           "status": "success" if ok else "error", "output": out})
            final = f"Committed {change.path} ({short})." if ok else "The commit failed."
    events.append({"type": "message", "timestamp": now(), "role": "assistant", "content": final, "delta": True})
    events.append({"type": "result", "timestamp": now(), "status": "success", "stats": STATS})
    output = args.get("output_format", "text")
    if output == "stream-json":
        emit([dumps(e) for e in events])
    elif output == "json":
        response = "".join(e["content"] for e in events if e["type"] == "message" and e["role"] == "assistant")
        metrics = {"models": {model: {"api": {"totalRequests": 3, "totalErrors": 0, "totalLatencyMs": 5100},
                                      "tokens": {"prompt": 12800, "candidates": 1150, "total": 13950,
                                                 "cached": 8000, "thoughts": 0, "tool": 0}}},
                   "tools": {"totalCalls": 2, "totalSuccess": 2, "totalFail": 0}}
        emit(json.dumps({"session_id": session, "response": response, "stats": metrics}, indent=2).splitlines())
    else:
        emit([final])
    return 0
