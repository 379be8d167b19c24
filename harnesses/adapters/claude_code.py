"""The `claude-code` harness: Claude Code in print mode, streaming JSON.

    claude -p --output-format stream-json --verbose --permission-mode acceptEdits
           [--model M] [--max-turns N] [--append-system-prompt T] [--mcp-config F]
           [--resume SESSION] --allowedTools "Bash(git add:*),…" [--disallowedTools "Edit(./secrets/**),…"]

The prompt goes on stdin (``claude -p`` reads it there when no prompt argument is given).

Options (the feature's ``agent`` config): ``permission_mode`` (default ``acceptEdits``;
``bypassPermissions`` for a sandboxed worker), ``allowed_tools`` / ``disallowed_tools``
(permission rules, added to the defaults), ``default_allowed_tools: false`` (drop the git
rules below), ``max_turns``, ``append_system_prompt``, ``mcp_config``, ``extra_args``.

Governance: each forbidden path becomes an ``Edit(...)`` deny rule. Claude Code applies
``Edit`` rules to every built-in file-editing tool (Write, Edit, MultiEdit, NotebookEdit),
with gitignore-style patterns relative to the working directory (``./path/**``). Deny rules
win over allow rules and over every permission mode. Bash can still write anywhere: the
result is checked authoritatively by review governance, this only steers the agent early.

Stream (``--verbose`` is required with stream-json in print mode): a ``system``/``init``
line (session id, model), ``assistant`` messages whose content blocks are ``text`` and
``tool_use``, ``user`` messages carrying ``tool_result`` blocks, and a final ``result`` with
``subtype`` (``success``, ``error_max_turns``, ``error_during_execution``…), ``is_error``,
``num_turns``, ``total_cost_usd``, ``usage`` and ``session_id``.

Usage: the result's figures (and its ``total_cost_usd``) are the CLI's own and final. While it
runs, each assistant message carries its API call's usage (repeated for each content block of
that call, so counted once per message id): the adapter adds those up into a running
``usage`` event priced from ``options["prices"]`` or ``DEFAULT_PRICES`` (an estimate, so a
budget can stop the run mid-stream; unknown model and no ``"*"`` price: no estimate).
"""

from __future__ import annotations

from pathlib import Path

from harnesses.base import AgentEvent, HarnessAdapter, HarnessError, Invocation, RunSpec, Usage
from harnesses.jsonlines import (
    as_decimal,
    as_int,
    mapping,
    one_line,
    parse_json_line,
    string_list,
    tool_input_summary,
    whole,
)
from harnesses.prices import estimated_cost, models_starting, run_prices
from harnesses.registry import register

# Anthropic's models in the farm's price table (harnesses/prices.json); only for the running
# estimate: the CLI's total_cost_usd is what the ledger keeps.
DEFAULT_PRICES = models_starting("claude-")

# A WP is done by committing: let the agent run the git commands that takes, nothing more.
DEFAULT_ALLOWED_TOOLS = (
    "Bash(git status:*)",
    "Bash(git diff:*)",
    "Bash(git log:*)",
    "Bash(git add:*)",
    "Bash(git commit:*)",
)


def edit_deny_rules(forbidden_paths: list[str]) -> list[str]:
    """Repo-relative forbidden prefixes (``secrets/`` or ``config/prod.yaml``, as governance
    reads them) → ``Edit`` deny rules relative to the working directory."""
    rules: list[str] = []
    for raw in forbidden_paths:
        path = raw.strip()
        while path.startswith("./"):
            path = path[2:]
        path = path.lstrip("/")
        if not path:
            continue
        if path.endswith("/"):
            rules.append(f"Edit(./{path}**)")
        else:
            rules += [f"Edit(./{path})", f"Edit(./{path}/**)"]
    return rules


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _usage(raw: object, cost: object, turns: object) -> Usage:
    u = raw if isinstance(raw, dict) else {}
    cache_read = as_int(u.get("cache_read_input_tokens"))
    return Usage(
        input_tokens=as_int(u.get("input_tokens")) + as_int(u.get("cache_creation_input_tokens")) + cache_read,
        output_tokens=as_int(u.get("output_tokens")),
        cached_input_tokens=cache_read,
        cost_usd=as_decimal(cost),
        turns=as_int(turns) if turns is not None else None,
    )


def _denials(denials: object) -> list[AgentEvent]:
    """The tool uses Claude Code's permission rules refused (``--disallowedTools``: the WP's
    forbidden paths), each an error naming the tool and the path: the reason a run that could not
    write ends without a commit, where git's own last word would be ``nothing to commit``."""
    events = []
    for denial in denials if isinstance(denials, list) else []:
        if not isinstance(denial, dict):
            continue
        tool = str(denial.get("tool_name") or "tool")
        tool_input = mapping(denial.get("tool_input")) or {}
        target = tool_input_summary(tool_input)
        said = f"Claude Code's permission rules refused {tool}" + (f" {target}" if target else "")
        events.append(AgentEvent(kind="error", text=said, is_error=True, tool="denied",
                                 tool_input={"tool": tool, "target": target}))
    return events


def _tool_result_text(content: object) -> str:
    if isinstance(content, list):
        content = "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return whole(content)


@register
class ClaudeCodeAdapter(HarnessAdapter):
    name = "claude-code"
    binary = "claude"
    install_hint = "npm install -g @anthropic-ai/claude-code"
    credential_env = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_USE_BEDROCK",
                      "CLAUDE_CODE_USE_VERTEX", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                      "AWS_REGION", "AWS_PROFILE")
    credential_files = ("~/.claude/.credentials.json",)
    # ``claude --resume ID`` finds ``~/.claude/projects/<cwd, non-alphanumerics as '-'>/ID.jsonl``
    # under any project folder, so it resumes from another worker's worktree path too (2.1.328).
    resumes = True

    def session_folder(self, workdir: Path) -> str | None:
        return ".claude/projects"

    def __init__(self) -> None:
        self.prices = DEFAULT_PRICES
        self.message_usage: dict[str, Usage] = {}  # per API call (message id), for the running estimate

    def build_command(self, spec: RunSpec) -> Invocation:
        options = spec.options
        self.prices = run_prices("claude-code", options, DEFAULT_PRICES)
        argv = [self.resolve_binary(spec), "-p", "--output-format", "stream-json", "--verbose",
                "--permission-mode", str(options.get("permission_mode") or "acceptEdits")]
        if spec.model:
            argv += ["--model", spec.model]
        if options.get("max_turns"):
            try:
                argv += ["--max-turns", str(int(options["max_turns"]))]
            except (TypeError, ValueError):
                raise HarnessError(f"harness 'claude-code': max_turns must be a whole number, "
                                   f"not {options['max_turns']!r}") from None
        argv += spec.value_flags({"append_system_prompt": "--append-system-prompt", "mcp_config": "--mcp-config"})
        if spec.resume_session:
            argv += ["--resume", spec.resume_session]
        argv += string_list(options.get("extra_args"))
        defaults = list(DEFAULT_ALLOWED_TOOLS) if options.get("default_allowed_tools", True) else []
        allowed = _unique(defaults + string_list(options.get("allowed_tools")))
        denied = _unique(string_list(options.get("disallowed_tools")) + edit_deny_rules(spec.forbidden_paths))
        # One comma-separated value per flag (the documented form): the flags are variadic,
        # so separate values would swallow anything that followed them.
        if allowed:
            argv += ["--allowedTools", ",".join(allowed)]
        if denied:
            argv += ["--disallowedTools", ",".join(denied)]
        return Invocation(argv=argv, stdin_text=spec.prompt)

    def parse_line(self, line: str) -> list[AgentEvent]:
        return parse_json_line(line, self._events)

    def _events(self, obj: dict) -> list[AgentEvent] | None:
        kind = obj.get("type")
        session = obj.get("session_id") if isinstance(obj.get("session_id"), str) else None
        if kind == "system":
            if obj.get("subtype") == "init":
                model = obj.get("model") if isinstance(obj.get("model"), str) else None
                return [AgentEvent(kind="init", text=f"Claude Code session {session} ({model or 'default model'})",
                                   session_id=session, model=model, raw=obj)]
            if obj.get("subtype") == "api_retry":  # the CLI retries on its own; the reason if it gives up
                return [AgentEvent(kind="error", text=f"API retry {obj.get('attempt')}/{obj.get('max_retries')}: "
                                   f"{obj.get('error_status') or ''} {obj.get('error') or 'error'}".replace("  ", " "),
                                   raw=obj)]
            return [AgentEvent(kind="log", text=f"system: {obj.get('subtype') or 'event'}", raw=obj)]
        if kind == "assistant":
            return self._assistant(obj.get("message") or {}, obj)
        if kind == "user":
            return self._tool_results(obj.get("message") or {}, obj)
        if kind == "result":
            subtype = str(obj.get("subtype") or "")
            is_error = bool(obj.get("is_error")) or (bool(subtype) and subtype != "success")
            result = obj.get("result") if isinstance(obj.get("result"), str) else ""
            errors = "; ".join(str(e) for e in obj.get("errors") or [] if e)
            text = one_line(result)
            if is_error:  # subtype "success" with is_error: the API failed (e.g. "API Error: 429 …")
                detail = one_line(result or errors)
                label = subtype if subtype and subtype != "success" else "error"
                text = f"{label}: {detail}" if detail else label
            return [*_denials(obj.get("permission_denials")),
                    AgentEvent(kind="result", text=text, session_id=session,
                               usage=_usage(obj.get("usage"), obj.get("total_cost_usd"), obj.get("num_turns")),
                               is_error=is_error, final=True, raw=obj)]
        if kind == "stream_event":  # partial deltas (--include-partial-messages): the full message follows
            return []
        return None

    def _assistant(self, message: dict, obj: dict) -> list[AgentEvent]:
        model = message.get("model") if isinstance(message.get("model"), str) else None
        events = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and str(block.get("text") or "").strip():
                events.append(AgentEvent(kind="message", text=one_line(block["text"]), model=model, raw=obj))
            elif block.get("type") == "tool_use":
                name = str(block.get("name") or "tool")
                summary = tool_input_summary(block.get("input"))
                events.append(AgentEvent(kind="tool_use", text=f"{name}: {summary}" if summary else name,
                                         model=model, raw=obj, tool=name, tool_input=mapping(block.get("input"))))
        running = self._running_usage(message, model)
        return events + ([running] if running else [])

    def _running_usage(self, message: dict, model: str | None) -> AgentEvent | None:
        """The first time a message id is seen: the running total of every call so far."""
        message_id = message.get("id")
        if not isinstance(message_id, str) or message_id in self.message_usage:
            return None
        self.message_usage[message_id] = _usage(message.get("usage"), None, None)
        total = Usage(input_tokens=sum(u.input_tokens for u in self.message_usage.values()),
                      output_tokens=sum(u.output_tokens for u in self.message_usage.values()),
                      cached_input_tokens=sum(u.cached_input_tokens for u in self.message_usage.values()))
        total.cost_usd = estimated_cost(total, model, self.prices)
        return AgentEvent(kind="usage", usage=total, model=model)

    def _tool_results(self, message: dict, obj: dict) -> list[AgentEvent]:
        content = message.get("content")
        if not isinstance(content, list):
            return []  # the prompt echoed back: nothing to report
        events = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                error = bool(block.get("is_error"))
                text = _tool_result_text(block.get("content"))
                events.append(AgentEvent(kind="tool_result", text=f"error: {text}" if error and text else text,
                                         is_error=error, raw=obj))
        return events
