"""The `codex` harness: OpenAI Codex CLI, ``codex exec`` with JSON Lines events.

    codex exec --json --sandbox workspace-write --add-dir <git dir> --skip-git-repo-check
               [-m MODEL] -C <worktree> [-c key=value …] [resume SESSION] -

``-`` reads the prompt from stdin. ``codex exec`` never asks for approval; the sandbox sets
what it may do. The farm passes ``--sandbox danger-full-access`` by default: Codex 0.169's
``workspace-write`` mounts every ``.git`` read-only, including a linked worktree's git dir
given with ``--add-dir``, so the agent's ``git commit`` fails with exit 128 on ``index.lock``
(tested against the real CLI: tests/integration/dispatch/test_real_clis.py). A WP is done by
committing, so that sandbox cannot do the work. The agent is to be confined by the farm's
own sandbox around the whole agent process (the worker's bubblewrap sandbox, branch
``sandbox``), which leaves Codex's inner one redundant; without it Codex runs unconfined.
``sandbox: workspace-write`` is still accepted (the git dir is then added with ``--add-dir``,
read from the worktree's ``.git`` file) for Codex versions that let it write there.

Model endpoint: ``OPENAI_BASE_URL`` in the worker's environment (with ``OPENAI_API_KEY``)
becomes a ``model_providers.agileplus`` entry (``wire_api = "responses"``) selected with
``model_provider``; without it Codex uses its own provider and login.

Options: ``sandbox`` (``read-only`` | ``workspace-write`` | ``danger-full-access``),
``bypass_sandbox`` (``--dangerously-bypass-approvals-and-sandbox``), ``add_dirs``,
``config`` (mapping → ``-c key=value``), ``profile``, ``skip_git_repo_check`` (default true),
``prices``, ``extra_args``.

Events (one JSON object per line): ``thread.started`` (``thread_id``, the session to resume),
``turn.started``, ``item.started|updated|completed`` with an ``item`` of type
``agent_message``, ``reasoning``, ``command_execution``, ``file_change``, ``mcp_tool_call``,
``web_search``, ``todo_list`` or ``error``; ``turn.completed`` with ``usage``
(``input_tokens`` including ``cached_input_tokens``, ``output_tokens``; cumulative for the
thread), ``turn.failed`` with ``error.message``, and ``error`` (reconnect notices and fatal
stream errors alike, so not final by itself).

Codex reports no price. Cost = uncached input × input price + cached input × cached price +
output × output price, per million tokens, from ``options["prices"]`` (see
:mod:`harnesses.jsonlines`) or ``DEFAULT_PRICES`` below, for the configured model. Without a
configured model (Codex picks its own default and does not say which) the cost is unknown
unless the table has a ``"*"`` entry.
"""

from __future__ import annotations

import json
from pathlib import Path

from harnesses.base import AgentEvent, HarnessAdapter, HarnessError, Invocation, RunSpec, Usage
from harnesses.jsonlines import as_int, mapping, one_line, parse_json_line, string_list, tool_input_summary, whole
from harnesses.prices import estimated_cost, models_starting, run_prices
from harnesses.registry import register

# The codex models in the farm's price table (harnesses/prices.json); override per feature with
# agent.prices (a model's exact name, or a prefix of it, or "*").
DEFAULT_PRICES = models_starting("gpt-5", "o4-")
SANDBOXES = ("read-only", "workspace-write", "danger-full-access")
DEFAULT_SANDBOX = "danger-full-access"  # see the module docstring: the farm's sandbox confines it
PROVIDER = "agileplus"


def git_dirs(workdir: Path) -> list[str]:
    """The git dir a commit in ``workdir`` writes to: ``.git`` itself, or for a linked worktree
    (``.git`` is a file ``gitdir: …``) the repository's common dir, which holds the worktree's."""
    dot_git = Path(workdir) / ".git"
    try:
        if dot_git.is_dir():
            return [str(dot_git.resolve())]
        text = dot_git.read_text().strip()
    except OSError:
        return []
    if not text.startswith("gitdir:"):
        return []
    gitdir = (Path(workdir) / text.split(":", 1)[1].strip()).resolve()
    try:
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
    except OSError:
        return [str(gitdir)]
    return [str(common)] if gitdir.is_relative_to(common) else [str(common), str(gitdir)]


def _config_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@register
class CodexAdapter(HarnessAdapter):
    name = "codex"
    binary = "codex"
    install_hint = "npm install -g @openai/codex"
    credential_env = ("OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL", "CODEX_HOME")
    credential_files = ("~/.codex/auth.json", "~/.codex/config.toml")
    # ``codex exec resume ID`` reads ``~/.codex/sessions/YYYY/MM/DD/rollout-…-ID.jsonl`` (0.169.0);
    # nothing else of ~/.codex is needed to resume.
    resumes = True

    def session_folder(self, workdir: Path) -> str | None:
        return ".codex/sessions"

    def session_usage(self, folder: Path) -> Usage | None:
        """turn.completed's usage is the thread's, across `exec resume` runs (0.169.0): the rollout's
        last ``token_count`` event (written after each model call) is what the thread had used."""
        total: dict | None = None
        for rollout in sorted(folder.rglob("rollout-*.jsonl")):
            for line in rollout.read_text(errors="replace").splitlines():
                if '"token_count"' not in line:
                    continue
                try:
                    info = (json.loads(line).get("payload") or {}).get("info") or {}
                except (ValueError, AttributeError):
                    continue
                if isinstance(info.get("total_token_usage"), dict):
                    total = info["total_token_usage"]
        if total is None:
            return None
        usage = Usage(input_tokens=as_int(total.get("input_tokens")), output_tokens=as_int(total.get("output_tokens")),
                      cached_input_tokens=as_int(total.get("cached_input_tokens")))
        usage.cost_usd = estimated_cost(usage, self.model, self.prices)
        return usage

    def __init__(self) -> None:
        self.model: str | None = None
        self.prices = DEFAULT_PRICES
        self.usage: Usage | None = None
        self.last_message = ""

    def build_command(self, spec: RunSpec) -> Invocation:
        options = spec.options
        self.prices = run_prices("codex", options, DEFAULT_PRICES)
        self.model = spec.model
        argv = [self.resolve_binary(spec), "exec", "--json"]
        sandbox = str(options.get("sandbox") or DEFAULT_SANDBOX)
        if options.get("bypass_sandbox"):
            argv.append("--dangerously-bypass-approvals-and-sandbox")
        elif sandbox not in SANDBOXES:
            raise HarnessError(f"harness 'codex': sandbox must be one of {', '.join(SANDBOXES)}, not '{sandbox}'")
        else:
            argv += ["--sandbox", sandbox]
            if sandbox == "workspace-write":
                for directory in dict.fromkeys(git_dirs(spec.workdir) + string_list(options.get("add_dirs"))):
                    argv += ["--add-dir", directory]
        if options.get("skip_git_repo_check", True):
            argv.append("--skip-git-repo-check")
        if spec.model:
            argv += ["-m", spec.model]
        argv += spec.value_flags({"profile": "-p"})
        argv += ["-C", str(spec.workdir)]
        overrides = options.get("config") or {}
        if not isinstance(overrides, dict):
            raise HarnessError("harness 'codex': config must be a mapping of Codex config keys to values")
        base_url = spec.env.get("OPENAI_BASE_URL")
        if base_url and "model_provider" not in overrides:
            argv += ["-c", f"model_provider={PROVIDER}", "-c", f"model_providers.{PROVIDER}.name={PROVIDER}",
                     "-c", f"model_providers.{PROVIDER}.base_url={base_url}",
                     "-c", f"model_providers.{PROVIDER}.wire_api=responses",
                     "-c", f"model_providers.{PROVIDER}.env_key=OPENAI_API_KEY"]
        for key, value in overrides.items():
            argv += ["-c", f"{key}={_config_value(value)}"]
        argv += string_list(options.get("extra_args"))
        if spec.resume_session:
            argv += ["resume", spec.resume_session]
        argv.append("-")
        return Invocation(argv=argv, stdin_text=spec.prompt)

    def parse_line(self, line: str) -> list[AgentEvent]:
        return parse_json_line(line, self._events)

    def _events(self, obj: dict) -> list[AgentEvent] | None:
        kind = obj.get("type")
        if kind == "thread.started":
            thread = str(obj.get("thread_id") or "") or None
            return [AgentEvent(kind="init", text=f"Codex thread {thread} ({self.model or 'default model'})",
                               session_id=thread, model=self.model, raw=obj)]
        if kind == "turn.started":
            return []
        if kind in ("item.started", "item.updated", "item.completed"):
            item = obj.get("item")
            return self._item(kind.split(".", 1)[1], item, obj) if isinstance(item, dict) else None
        if kind == "turn.completed":
            raw = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
            usage = Usage(input_tokens=as_int(raw.get("input_tokens")),
                          output_tokens=as_int(raw.get("output_tokens")),
                          cached_input_tokens=as_int(raw.get("cached_input_tokens")))
            usage.cost_usd = estimated_cost(usage, self.model, self.prices)
            self.usage = usage
            return [AgentEvent(kind="result", text=one_line(self.last_message) or "turn completed", usage=usage,
                               model=self.model, final=True, raw=obj)]
        if kind == "turn.failed":
            error = obj.get("error") if isinstance(obj.get("error"), dict) else {}
            return [AgentEvent(kind="result", text=f"turn failed: {one_line(error.get('message'))}", usage=self.usage,
                               is_error=True, final=True, raw=obj)]
        if kind == "error":
            return [AgentEvent(kind="error", text=one_line(obj.get("message")), is_error=True, raw=obj)]
        return None

    def _item(self, phase: str, item: dict, obj: dict) -> list[AgentEvent]:
        kind = item.get("type") or item.get("item_type")
        status = item.get("status")
        failed = status == "failed"
        if kind == "agent_message" and phase == "completed":
            self.last_message = str(item.get("text") or "")
            return [AgentEvent(kind="message", text=one_line(self.last_message), raw=obj)]
        if kind == "reasoning" and phase == "completed":
            return [AgentEvent(kind="message", text=f"thinking: {one_line(item.get('text'))}", raw=obj)]
        if kind == "command_execution":
            if phase == "started":
                return [AgentEvent(kind="tool_use", text=f"$ {one_line(item.get('command'))}", raw=obj,
                                   tool="shell", tool_input={"command": str(item.get("command") or "")})]
            if phase == "completed":
                code = item.get("exit_code")
                failed = failed or (isinstance(code, int) and code != 0)
                output = whole(item.get("aggregated_output"))
                return [AgentEvent(kind="tool_result", text=f"exit {code}" + (f": {output}" if output else ""),
                                   is_error=failed, raw=obj)]
        if kind == "file_change" and phase == "completed":
            changes = ", ".join(f"{c.get('kind')} {c.get('path')}" for c in item.get("changes") or []
                                if isinstance(c, dict))
            return [AgentEvent(kind="tool_result", text=("patch failed: " if failed else "patched: ") + changes,
                               is_error=failed, raw=obj, tool=None if failed else "file_change",
                               tool_input={"changes": [c for c in item.get("changes") or [] if isinstance(c, dict)]})]
        if kind == "mcp_tool_call":
            tool = f"{item.get('server')}.{item.get('tool')}"
            if phase == "started":
                summary = tool_input_summary(item.get("arguments"))
                return [AgentEvent(kind="tool_use", text=f"{tool}: {summary}" if summary else tool, raw=obj,
                                   tool=tool, tool_input=mapping(item.get("arguments")))]
            if phase == "completed":
                error = item.get("error") if isinstance(item.get("error"), dict) else None
                text = f"{tool} failed: {one_line(error.get('message'))}" if error else f"{tool} done"
                return [AgentEvent(kind="tool_result", text=text, is_error=failed or bool(error), raw=obj)]
        if kind == "web_search" and phase == "completed":
            return [AgentEvent(kind="tool_use", text=f"web search: {one_line(item.get('query'))}", raw=obj,
                               tool="web_search", tool_input={"query": str(item.get("query") or "")})]
        if kind == "todo_list" and phase in ("started", "completed"):
            todos = [t for t in item.get("items") or [] if isinstance(t, dict)]
            done = sum(1 for t in todos if t.get("completed"))
            return [AgentEvent(kind="message", text=f"plan: {done}/{len(todos)} done", raw=obj)]
        if kind == "error":
            return [AgentEvent(kind="error", text=one_line(item.get("message")), is_error=True, raw=obj)]
        return []
