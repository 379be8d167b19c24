"""The OpenAI Responses API (``POST /v1/responses`` with ``stream: true``) as Codex reads it:
SSE events ``response.created``, per output item ``response.output_item.added`` / ``.done``
(a ``message`` with ``output_text``, or a ``function_call`` with JSON ``arguments`` and a
``call_id``), then ``response.completed`` carrying ``usage`` (``input_tokens`` with
``input_tokens_details.cached_tokens``, ``output_tokens``). A failure mid-response is
``response.failed``; a 429 carries ``retry-after``.

Codex: point it here with a model provider whose ``base_url`` is ``{base_url}/v1`` and
``wire_api = "responses"``. ``Write`` and ``Run`` steps become a call of the shell tool the
request offers (``exec_command``, ``shell_command`` or ``shell``).
"""

from __future__ import annotations

import json
import shlex
from http.server import BaseHTTPRequestHandler

from harnesses.endpoints.base import Run, Say, ScriptedEndpoint, Turn, Write


def shell_line(action: Write | Run) -> str:
    if isinstance(action, Run):
        return action.command
    path = shlex.quote(action.path)
    return f"mkdir -p \"$(dirname {path})\" && printf %s {shlex.quote(action.content)} > {path}"


def _tool_names(body: dict) -> set[str]:
    return {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}


class ResponsesEndpoint(ScriptedEndpoint):
    protocol = "openai_responses"

    def is_agent_request(self, path: str, body: dict | None) -> bool:
        return path.split("?")[0].endswith("/responses") and bool(body and body.get("input"))

    def reply_side(self, handler: BaseHTTPRequestHandler, path: str, body: dict | None) -> None:
        if path.split("?")[0].endswith("/models"):
            self.send_json(handler, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}],
                                          "models": []})
        elif path.split("?")[0].endswith("/responses") and body:
            self.reply_turn(handler, Turn([Say("ok")], input_tokens=10, output_tokens=1), body)
        else:
            self.send_json(handler, 404, self.error_body(404, "not_found", f"no {path} here"))

    def error_body(self, status: int, kind: str, message: str) -> dict:
        return {"error": {"type": kind, "code": kind, "message": message}}

    def call(self, action: Write | Run, tools: set[str]) -> dict:
        line = shell_line(action)
        if "exec_command" in tools:
            name, arguments = "exec_command", {"cmd": line}
        elif "shell_command" in tools:
            name, arguments = "shell_command", {"command": line}
        else:
            name, arguments = "shell", {"command": ["bash", "-lc", line]}
        return {"type": "function_call", "id": self.next_id("fc"), "call_id": self.next_id("call"), "name": name,
                "arguments": json.dumps(arguments), "status": "completed"}

    def items(self, turn: Turn, body: dict) -> list[dict]:
        tools = _tool_names(body)
        items = []
        for action in turn.actions:
            if isinstance(action, Say):
                items.append({"type": "message", "id": self.next_id("msg"), "role": "assistant", "status": "completed",
                              "content": [{"type": "output_text", "text": action.text, "annotations": []}]})
            else:
                items.append(self.call(action, tools))
        return items

    def reply_turn(self, handler: BaseHTTPRequestHandler, turn: Turn, body: dict, *, cut: bool = False) -> None:
        self.bill(turn, cut=cut)
        items = self.items(turn, body)
        response_id = self.next_id("resp")
        base = {"id": response_id, "object": "response", "model": body.get("model") or self.model}
        events: list[tuple[str | None, dict]] = [
            ("response.created", {"type": "response.created", "response": {**base, "status": "in_progress"}})]
        for index, item in enumerate(items):
            events.append(("response.output_item.added",
                           {"type": "response.output_item.added", "output_index": index, "item": item}))
            if item["type"] == "message":
                events.append(("response.output_text.delta", {"type": "response.output_text.delta",
                                                              "item_id": item["id"], "output_index": index,
                                                              "content_index": 0,
                                                              "delta": item["content"][0]["text"]}))
            events.append(("response.output_item.done",
                           {"type": "response.output_item.done", "output_index": index, "item": item}))
        usage = {"input_tokens": turn.input_tokens,
                 "input_tokens_details": {"cached_tokens": turn.cached_input_tokens},
                 "output_tokens": turn.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": turn.input_tokens + turn.output_tokens}
        events.append(("response.completed", {"type": "response.completed",
                                              "response": {**base, "status": "completed", "output": items,
                                                           "usage": usage}}))
        self.start_stream(handler)
        self.send_events(handler, events, cut=cut, pause=turn.pause_between_events)
