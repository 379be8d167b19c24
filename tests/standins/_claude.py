"""Stand-in for Claude Code's print mode: ``claude -p --output-format stream-json --verbose``.

Checks what the real CLI checks (unknown options, stream-json needing --verbose, a prompt on
stdin or as argument) and applies the permission rules a run would meet: the file is written
with the Write tool (allowed by acceptEdits/bypassPermissions unless an ``Edit(...)`` deny
rule matches it) and committed with the Bash tool (allowed by bypassPermissions or an
allowedTools rule for ``git commit``). Prints the real stream: system/init, assistant and
user messages, and the result with usage and total_cost_usd.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys

from _common import Flag, command_line, commit, dumps, emit, new_id, planned_change, read_stdin, record, write

VERSION = "2.0.37 (Claude Code)"
DEFAULT_MODEL = "claude-sonnet-4-5-20250929"
PERMISSION_MODES = ("acceptEdits", "bypassPermissions", "default", "dontAsk", "plan")
FLAGS = [
    Flag(("-p", "--print")),
    Flag(("--output-format",), value=True, choices=("text", "json", "stream-json")),
    Flag(("--input-format",), value=True, choices=("text", "stream-json")),
    Flag(("--verbose",)),
    Flag(("-d", "--debug")),
    Flag(("--model",), value=True),
    Flag(("--fallback-model",), value=True),
    Flag(("--permission-mode",), value=True, choices=PERMISSION_MODES),
    Flag(("--dangerously-skip-permissions",)),
    Flag(("--allowedTools", "--allowed-tools"), value=True, variadic=True),
    Flag(("--disallowedTools", "--disallowed-tools"), value=True, variadic=True),
    Flag(("--max-turns",), value=True),
    Flag(("--max-budget-usd",), value=True),
    Flag(("--system-prompt",), value=True),
    Flag(("--append-system-prompt",), value=True),
    Flag(("--mcp-config",), value=True, variadic=True),
    Flag(("--strict-mcp-config",)),
    Flag(("--settings",), value=True),
    Flag(("--setting-sources",), value=True),
    Flag(("--add-dir",), value=True, variadic=True),
    Flag(("-r", "--resume"), value=True),
    Flag(("-c", "--continue")),
    Flag(("--session-id",), value=True),
    Flag(("--include-partial-messages",)),
    Flag(("--agents",), value=True),
    Flag(("-v", "--version")),
    Flag(("-h", "--help")),
]

# What the run costs, fixed so tests can assert it.
USAGE = {"input_tokens": 12, "cache_creation_input_tokens": 2310, "cache_read_input_tokens": 31250,
         "output_tokens": 640, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
         "service_tier": "standard", "cache_creation": {"ephemeral_1h_input_tokens": 0,
                                                        "ephemeral_5m_input_tokens": 2310}}
TOTAL_COST_USD = 0.0421835


def rules(values: list[str]) -> list[str]:
    """The rules in ``--allowedTools a,b c`` (commas and spaces outside parentheses)."""
    found = []
    for value in values:
        found += [r.strip() for r in re.findall(r"[^,\s(]+(?:\([^)]*\))?", value) if r.strip()]
    return found


def edit_denied(path: str, denied: list[str]) -> bool:
    for rule in denied:
        if rule in ("Edit", "Write"):
            return True
        match = re.fullmatch(r"Edit\((.*)\)", rule)
        if match:
            pattern = match.group(1).removeprefix("./")
            if fnmatch.fnmatch(path, pattern) or (pattern.endswith("/**") and path.startswith(pattern[:-2])):
                return True
    return False


def commit_allowed(mode: str, allowed: list[str], denied: list[str]) -> bool:
    if any(rule == "Bash" or rule.startswith("Bash(git commit") or rule.startswith("Bash(git:") for rule in denied):
        return False
    return mode == "bypassPermissions" or any(
        rule == "Bash" or rule.startswith("Bash(git commit") or rule.startswith("Bash(git:") for rule in allowed)


def main(argv: list[str]) -> int:
    args = command_line(argv, FLAGS, refused="error: ", version=VERSION)
    if not args.get("print"):
        print("error: this stand-in only runs print mode (-p)", file=sys.stderr)
        return 2
    stdin = read_stdin()
    record(argv, stdin)
    output = args.get("output_format", "text")
    if output == "stream-json" and not args.get("verbose"):
        print("Error: When using --print, --output-format=stream-json requires --verbose", file=sys.stderr)
        return 1
    prompt = "\n".join(p for p in (stdin.strip(), " ".join(args.positionals)) if p)
    if not prompt:
        print("Error: Input must be provided either through stdin or as a prompt argument when using --print",
              file=sys.stderr)
        return 1

    session = args.get("resume") or args.get("session_id") or new_id()
    model = args.get("model") or DEFAULT_MODEL
    mode = "bypassPermissions" if args.get("dangerously_skip_permissions") else args.get("permission_mode", "default")
    allowed, denied = rules(args.get("allowedTools", [])), rules(args.get("disallowedTools", []))
    change = planned_change("claude", prompt)
    lines: list[str] = []
    denials: list[dict] = []

    def assistant(*content: dict, usage: dict | None = None) -> None:
        message = {"model": model, "id": f"msg_{new_id()[:24]}", "type": "message", "role": "assistant",
                   "content": list(content), "stop_reason": None, "stop_sequence": None,
                   "usage": usage or {"input_tokens": 3, "cache_creation_input_tokens": 770,
                                      "cache_read_input_tokens": 7812, "output_tokens": 160,
                                      "service_tier": "standard"}}
        lines.append(dumps({"type": "assistant", "message": message, "parent_tool_use_id": None,
                            "session_id": session, "uuid": new_id()}))

    def tool_result(tool_id: str, text: str, is_error: bool = False) -> None:
        block = {"tool_use_id": tool_id, "type": "tool_result", "content": text, "is_error": is_error}
        lines.append(dumps({"type": "user", "message": {"role": "user", "content": [block]},
                            "parent_tool_use_id": None, "session_id": session, "uuid": new_id()}))

    lines.append(dumps({"type": "system", "subtype": "init", "cwd": os.getcwd(), "session_id": session,
                        "tools": ["Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "TodoWrite"],
                        "mcp_servers": [], "model": model, "permissionMode": mode,
                        "slash_commands": ["compact", "review"], "apiKeySource": "none",
                        "claude_code_version": VERSION.split()[0], "output_style": "default", "agents": [],
                        "skills": [], "plugins": [], "uuid": new_id()}))
    assistant({"type": "text", "text": f"I'll create {change.path} and commit it."})
    write_id, bash_id = f"toolu_{new_id()[:20]}", f"toolu_{new_id()[:20]}"
    assistant({"type": "tool_use", "id": write_id, "name": "Write",
               "input": {"file_path": os.path.abspath(change.path), "content": change.content}})
    committed = False
    if mode not in ("acceptEdits", "bypassPermissions") or edit_denied(change.path, denied):
        denials.append({"tool_name": "Write", "tool_use_id": write_id, "tool_input": {"file_path": change.path}})
        tool_result(write_id, "Claude requested permissions to write to " + change.path
                    + ", but you haven't granted it yet.", is_error=True)
        final = "I could not write the file: permission was denied."
    else:
        write(change)
        tool_result(write_id, f"File created successfully at: {os.path.abspath(change.path)}")
        command = f'git add {change.path} && git commit -m "{change.message}"'
        assistant({"type": "tool_use", "id": bash_id, "name": "Bash",
                   "input": {"command": command, "description": "Commit the change"}})
        if not commit_allowed(mode, allowed, denied):
            denials.append({"tool_name": "Bash", "tool_use_id": bash_id, "tool_input": {"command": command}})
            tool_result(bash_id, "Claude requested permissions to use Bash, but you haven't granted it yet.",
                        is_error=True)
            final = f"I wrote {change.path} but could not commit it: permission was denied."
        else:
            committed, out, short = commit(change)
            tool_result(bash_id, out, is_error=not committed)
            final = f"Done: committed {change.path} as {short}." if committed else "The commit failed."
    assistant({"type": "text", "text": final})
    result = {"type": "result", "subtype": "success", "is_error": False, "duration_ms": 18234,
              "duration_api_ms": 16890, "num_turns": 4, "result": final, "session_id": session,
              "total_cost_usd": TOTAL_COST_USD, "usage": USAGE,
              "modelUsage": {model: {"inputTokens": 12, "outputTokens": 640, "cacheReadInputTokens": 31250,
                                     "cacheCreationInputTokens": 2310, "webSearchRequests": 0,
                                     "costUSD": TOTAL_COST_USD, "contextWindow": 200000}},
              "permission_denials": denials, "uuid": new_id()}
    if output == "stream-json":
        emit([*lines, dumps(result)])
    elif output == "json":
        emit([dumps(result)])
    else:
        emit([final])
    return 0
