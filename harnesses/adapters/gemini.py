"""The `gemini` harness: Gemini CLI in headless mode, streaming JSON.

    gemini --output-format stream-json --approval-mode yolo [-m MODEL] [--resume SESSION]
           [--include-directories DIR …] -p PROMPT

Headless mode runs when ``-p`` is given. A prompt too large for one argument goes on stdin
(Gemini CLI reads piped stdin and puts it before the ``-p`` text) with a short ``-p``.
Headless runs cannot ask for approval: without ``yolo`` the shell tool (and so ``git
commit``) is refused; set ``approval_mode: auto_edit`` to allow file edits only.

Options: ``approval_mode`` (``default`` | ``auto_edit`` | ``yolo``; default ``yolo``),
``include_directories``, ``prices``, ``extra_args``.

Events (``packages/core/src/output/types.ts``): ``init`` (``session_id``, ``model``),
``message`` (``role`` user|assistant, ``content``, ``delta`` for streamed chunks),
``tool_use`` (``tool_name``, ``tool_id``, ``parameters``), ``tool_result`` (``tool_id``,
``status`` success|error, ``output``, ``error``), ``error`` (``severity`` warning|error,
``message``) and ``result`` (``status``, ``error``, ``stats``: ``input_tokens`` including
``cached``, ``output_tokens``, ``total_tokens``, ``duration_ms``, ``tool_calls``).
Streamed assistant chunks are joined into one message event, emitted when the next
non-chunk event arrives. Gemini reports no cost: it is priced like Codex (see
:mod:`harnesses.jsonlines`), for the model the ``init`` event names.
"""

from __future__ import annotations

import re
from pathlib import Path

from harnesses.base import AgentEvent, HarnessAdapter, HarnessError, Invocation, RunSpec, Usage
from harnesses.jsonlines import (
    as_int,
    mapping,
    one_line,
    parse_json_line,
    prompt_fits_argv,
    string_list,
    tool_input_summary,
    whole,
)
from harnesses.prices import estimated_cost, models_starting, run_prices
from harnesses.registry import register

# Google's models in the farm's price table (harnesses/prices.json: prompts up to 200k tokens);
# override per feature with agent.prices.
DEFAULT_PRICES = models_starting("gemini-")
APPROVAL_MODES = ("default", "auto_edit", "yolo")
STDIN_PROMPT_INSTRUCTION = "Carry out the task described in the input above."


def project_slug(workdir: Path) -> str:
    """The folder name Gemini CLI gives a project in a fresh HOME (``ProjectRegistry.slugify``)."""
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", workdir.name.lower())).strip("-")
    return slug or "project"


@register
class GeminiAdapter(HarnessAdapter):
    name = "gemini"
    binary = "gemini"
    install_hint = "npm install -g @google/gemini-cli"
    credential_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_CLOUD_PROJECT",
                      "GOOGLE_GENAI_USE_VERTEXAI")
    credential_files = ("~/.gemini/oauth_creds.json", "~/.gemini/settings.json")
    # ``gemini --resume ID`` lists ``~/.gemini/tmp/<project>/chats/session-…-<ID[:8]>.jsonl`` of the
    # working directory's project only (0.61.0). The project folder is a slug of the directory's
    # base name, claimed in ``~/.gemini/projects.json``: in a fresh HOME (each sandbox) the same
    # worktree name gets the same slug on any worker, so the chats restored there resume from
    # another worktree path (seen with the real CLI; the chat's ``projectHash`` is not checked).
    resumes = True

    def session_folder(self, workdir: Path) -> str | None:
        return f".gemini/tmp/{project_slug(workdir)}/chats"

    def __init__(self) -> None:
        self.model: str | None = None
        self.prices = DEFAULT_PRICES
        self.chunks: list[str] = []
        self.response: list[str] = []

    def build_command(self, spec: RunSpec) -> Invocation:
        options = spec.options
        self.prices = run_prices("gemini", options, DEFAULT_PRICES)
        self.model = spec.model
        approval = str(options.get("approval_mode") or "yolo")
        if approval not in APPROVAL_MODES:
            raise HarnessError(f"harness 'gemini': approval_mode must be one of {', '.join(APPROVAL_MODES)}, "
                               f"not '{approval}'")
        argv = [self.resolve_binary(spec), "--output-format", "stream-json", "--approval-mode", approval]
        if spec.model:
            argv += ["-m", spec.model]
        if spec.resume_session:
            argv += ["--resume", spec.resume_session]
        for directory in string_list(options.get("include_directories")):
            argv += ["--include-directories", directory]
        argv += string_list(options.get("extra_args"))
        if prompt_fits_argv(spec.prompt):
            return Invocation(argv=[*argv, "-p", spec.prompt])
        return Invocation(argv=[*argv, "-p", STDIN_PROMPT_INSTRUCTION], stdin_text=spec.prompt)

    def parse_line(self, line: str) -> list[AgentEvent]:
        return parse_json_line(line, self._events)

    def _flush(self) -> list[AgentEvent]:
        if not self.chunks:
            return []
        text, self.chunks = "".join(self.chunks), []
        return [AgentEvent(kind="message", text=one_line(text), model=self.model)] if text.strip() else []

    def _events(self, obj: dict) -> list[AgentEvent] | None:
        kind = obj.get("type")
        if kind == "message":
            if obj.get("role") != "assistant":
                return []  # the prompt echoed back
            content = str(obj.get("content") or "")
            self.response.append(content)
            if obj.get("delta"):
                self.chunks.append(content)
                return []
            return [*self._flush(), AgentEvent(kind="message", text=one_line(content), model=self.model, raw=obj)]
        if kind not in ("init", "tool_use", "tool_result", "error", "result"):
            return None
        events = self._flush()
        if kind == "init":
            self.model = obj.get("model") if isinstance(obj.get("model"), str) else self.model
            session = str(obj.get("session_id") or "") or None
            events.append(AgentEvent(kind="init",
                                     text=f"Gemini CLI session {session} ({self.model or 'default model'})",
                                     session_id=session, model=self.model, raw=obj))
        elif kind == "tool_use":
            name = str(obj.get("tool_name") or "tool")
            summary = tool_input_summary(obj.get("parameters"))
            events.append(AgentEvent(kind="tool_use", text=f"{name}: {summary}" if summary else name, raw=obj,
                                     tool=name, tool_input=mapping(obj.get("parameters"))))
        elif kind == "tool_result":
            failed = obj.get("status") == "error"
            error = obj.get("error") if isinstance(obj.get("error"), dict) else {}
            text = f"error: {whole(error.get('message') or obj.get('output'))}" if failed else whole(obj.get("output"))
            events.append(AgentEvent(kind="tool_result", text=text, is_error=failed, raw=obj))
        elif kind == "error":
            severe = obj.get("severity") != "warning"
            events.append(AgentEvent(kind="error", text=one_line(obj.get("message")), is_error=severe, raw=obj))
        else:
            events.append(self._result(obj))
        return events

    def _result(self, obj: dict) -> AgentEvent:
        stats = obj.get("stats") if isinstance(obj.get("stats"), dict) else None
        usage = None
        if stats is not None:
            usage = Usage(input_tokens=as_int(stats.get("input_tokens")),
                          output_tokens=as_int(stats.get("output_tokens")),
                          cached_input_tokens=as_int(stats.get("cached")))
            usage.cost_usd = estimated_cost(usage, self.model, self.prices)
        failed = obj.get("status") != "success"
        error = obj.get("error") if isinstance(obj.get("error"), dict) else {}
        text = f"error: {one_line(error.get('message'))}" if failed else one_line("".join(self.response))
        return AgentEvent(kind="result", text=text, usage=usage, model=self.model, is_error=failed, final=True,
                          raw=obj)
