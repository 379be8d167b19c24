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
``num_turns``, ``total_cost_usd``, ``usage`` and ``session_id``. Usage comes from the
result only: per-message usage repeats for each content block of one API call.
"""

from __future__ import annotations

from harnesses.base import AgentEvent, HarnessAdapter, HarnessError, Invocation, RunSpec, Usage
from harnesses.jsonlines import (
    as_decimal,
    as_int,
    one_line,
    parse_json_line,
    string_list,
    tool_input_summary,
    whole,
)
from harnesses.registry import register

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


def _tool_result_text(content: object) -> str:
    if isinstance(content, list):
        content = "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return whole(content)


@register
class ClaudeCodeAdapter(HarnessAdapter):
    name = "claude-code"
    binary = "claude"
    install_hint = "npm install -g @anthropic-ai/claude-code"
    credential_env = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL")

    def build_command(self, spec: RunSpec) -> Invocation:
        options = spec.options
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
        if options.get("append_system_prompt"):
            argv += ["--append-system-prompt", str(options["append_system_prompt"])]
        if options.get("mcp_config"):
            argv += ["--mcp-config", str(options["mcp_config"])]
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
            if is_error:
                detail = one_line(result or errors)
                text = f"{subtype or 'error'}: {detail}" if detail else subtype or "error"
            return [AgentEvent(kind="result", text=text, session_id=session,
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
                                         model=model, raw=obj))
        return events

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
