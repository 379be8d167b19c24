"""The Anthropic Messages API (``POST /v1/messages``), streamed as SSE the way Claude Code reads
it: ``message_start`` (usage of the input), per block ``content_block_start`` /
``content_block_delta`` (``text_delta`` or ``input_json_delta``) / ``content_block_stop``, then
``message_delta`` (``stop_reason``, output usage) and ``message_stop``.

Claude Code: point it here with ``ANTHROPIC_BASE_URL`` (and any ``ANTHROPIC_API_KEY``). A
``Write`` step becomes its ``Write`` tool (an absolute path, from the working directory its
system prompt names), a ``Run`` step its ``Bash`` tool.
"""

from __future__ import annotations

import json
import re
import shlex
from http.server import BaseHTTPRequestHandler

from harnesses.endpoints.base import Run, Say, ScriptedEndpoint, Turn, Write

WORKDIR = re.compile(r"[Ww]orking directory: (/[^\s\"\\]+)")


def _tool_names(body: dict) -> set[str]:
    return {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}


def _workdir(body: dict) -> str | None:
    """The working directory the request names: the system prompt's, else the conversation's
    latest (a resumed Claude Code session carries the old run's and then the new one's)."""
    match = WORKDIR.search(json.dumps(body.get("system") or ""))
    if match:
        return match.group(1)
    found = WORKDIR.findall(json.dumps(body.get("messages") or ""))
    return found[-1] if found else None


class AnthropicEndpoint(ScriptedEndpoint):
    protocol = "anthropic"

    def workdir_of(self, body: dict) -> str | None:
        return _workdir(body)

    def is_agent_request(self, path: str, body: dict | None) -> bool:
        return path.split("?")[0].endswith("/v1/messages") and bool(body and body.get("tools"))

    def reply_side(self, handler: BaseHTTPRequestHandler, path: str, body: dict | None) -> None:
        if path.split("?")[0].endswith("/v1/messages/count_tokens"):
            self.send_json(handler, 200, {"input_tokens": 100})
        elif path.split("?")[0].endswith("/v1/messages") and body:
            self.reply_turn(handler, Turn([Say("ok")], input_tokens=10, output_tokens=1), body)
        else:
            self.send_json(handler, 404, self.error_body(404, "not_found_error", f"no {path} here"))

    def blocks(self, turn: Turn, body: dict) -> list[dict]:
        """Claude Code's tools are ``Write``/``Bash``; opencode's (same protocol) ``write``/``bash``."""
        tools, cwd = _tool_names(body), _workdir(body)
        bash = "bash" if "bash" in tools and "Bash" not in tools else "Bash"
        blocks: list[dict] = []
        for action in turn.actions:
            if isinstance(action, Say):
                blocks.append({"type": "text", "text": action.text})
            elif isinstance(action, Write) and "Write" in tools and cwd:
                blocks.append(self._tool("Write", {"file_path": f"{cwd}/{action.path}", "content": action.content}))
            elif isinstance(action, Write) and "write" in tools and cwd:
                blocks.append(self._tool("write", {"filePath": f"{cwd}/{action.path}", "content": action.content}))
            elif isinstance(action, Write):
                command = (f"mkdir -p \"$(dirname {shlex.quote(action.path)})\""
                           f" && printf %s {shlex.quote(action.content)} > {shlex.quote(action.path)}")
                blocks.append(self._tool(bash, {"command": command, "description": f"write {action.path}"}))
            elif isinstance(action, Run):
                blocks.append(self._tool(bash, {"command": action.command, "description": "run a command"}))
        return blocks

    def _tool(self, name: str, arguments: dict) -> dict:
        return {"type": "tool_use", "id": self.next_id("toolu"), "name": name, "input": arguments}

    def reply_turn(self, handler: BaseHTTPRequestHandler, turn: Turn, body: dict, *, cut: bool = False) -> None:
        self.bill(turn, cut=cut)
        blocks = self.blocks(turn, body)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        model = body.get("model") or self.model
        usage = {"input_tokens": turn.input_tokens - turn.cached_input_tokens, "output_tokens": 1,
                 "cache_read_input_tokens": turn.cached_input_tokens, "cache_creation_input_tokens": 0}
        message = {"id": self.next_id("msg"), "type": "message", "role": "assistant", "model": model,
                   "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            message.update(content=blocks, stop_reason=stop, usage={**usage, "output_tokens": turn.output_tokens})
            self.send_json(handler, 200, message, cut=cut)
            return
        events: list[tuple[str | None, dict]] = [("message_start", {"type": "message_start", "message": message})]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                       "content_block": {"type": "text", "text": ""}}))
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                       "content_block": {**block, "input": {}}}))
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop, "stop_sequence": None},
                                         "usage": {"output_tokens": turn.output_tokens}}))
        events.append(("message_stop", {"type": "message_stop"}))
        self.start_stream(handler)
        self.send_events(handler, events, cut=cut, pause=turn.pause_between_events)
