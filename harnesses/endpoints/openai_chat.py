"""OpenAI chat completions (``POST /v1/chat/completions``), streamed (SSE ``chat.completion.chunk``
with ``choices[0].delta``, then ``data: [DONE]``) or not, with ``usage`` (``prompt_tokens``,
``completion_tokens``, ``prompt_tokens_details.cached_tokens``).

Aider reads it (``OPENAI_API_BASE`` + ``OPENAI_API_KEY``). Aider edits files through text, not
tool calls: a ``Write`` step becomes a file in Aider's ``whole`` edit format (the path, then the
content fenced), which Aider applies and commits itself. Its commit-message request (a system
prompt asking for a commit message) is answered with ``commit_message`` (a list: one message per
commit request in order, the last one repeated); a ``Run`` step has no
equivalent and is refused. Requests offering ``tools`` get ``Run``/``Write`` as function calls
(``bash`` / ``write``) for tool-calling clients.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

from harnesses.endpoints.base import Run, Say, ScriptedEndpoint, Turn, Write


def _system_text(body: dict) -> str:
    return " ".join(str(m.get("content") or "") for m in body.get("messages") or []
                    if isinstance(m, dict) and m.get("role") == "system")


class ChatEndpoint(ScriptedEndpoint):
    protocol = "openai_chat"

    def __init__(self, *args, commit_message: str | list[str] = "feat(WP01): scripted change", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commit_messages = [commit_message] if isinstance(commit_message, str) else list(commit_message)
        self._commit_requests = 0

    def next_commit_message(self) -> str:
        with self._lock:
            index = min(self._commit_requests, len(self.commit_messages) - 1)
            self._commit_requests += 1
        return self.commit_messages[index]

    def is_agent_request(self, path: str, body: dict | None) -> bool:
        return (path.split("?")[0].endswith("/chat/completions") and bool(body)
                and "commit message" not in _system_text(body).lower())

    def reply_side(self, handler: BaseHTTPRequestHandler, path: str, body: dict | None) -> None:
        if path.split("?")[0].endswith("/models"):
            self.send_json(handler, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
        elif path.split("?")[0].endswith("/chat/completions") and body:
            self.reply_turn(handler, Turn([Say(self.next_commit_message())], input_tokens=10, output_tokens=5), body)
        else:
            self.send_json(handler, 404, self.error_body(404, "not_found", f"no {path} here"))

    def error_body(self, status: int, kind: str, message: str) -> dict:
        return {"error": {"type": kind, "code": kind, "message": message}}

    def message(self, turn: Turn, body: dict) -> tuple[str, list[dict]]:
        text, calls = [], []
        tools = bool(body.get("tools"))
        for action in turn.actions:
            if isinstance(action, Say):
                text.append(action.text)
            elif isinstance(action, Write) and not tools:
                text.append(f"{action.path}\n```\n{action.content.rstrip()}\n```")
            elif tools:
                name, args = (("write", {"filePath": action.path, "content": action.content})
                              if isinstance(action, Write) else ("bash", {"command": action.command}))
                calls.append({"id": self.next_id("call"), "type": "function",
                              "function": {"name": name, "arguments": json.dumps(args)}})
            elif isinstance(action, Run):
                raise ValueError("a chat client without tools cannot run a command: script a Write instead")
        return "\n\n".join(text), calls

    def reply_turn(self, handler: BaseHTTPRequestHandler, turn: Turn, body: dict, *, cut: bool = False) -> None:
        self.bill(turn, cut=cut)
        content, calls = self.message(turn, body)
        usage = {"prompt_tokens": turn.input_tokens, "completion_tokens": turn.output_tokens,
                 "total_tokens": turn.input_tokens + turn.output_tokens,
                 "prompt_tokens_details": {"cached_tokens": turn.cached_input_tokens}}
        finish = "tool_calls" if calls else "stop"
        base = {"id": self.next_id("chatcmpl"), "created": int(time.time()), "model": body.get("model") or self.model}
        message = {"role": "assistant", "content": content or None, **({"tool_calls": calls} if calls else {})}
        if not body.get("stream"):
            self.send_json(handler, 200, {**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": message, "finish_reason": finish}]}, cut=cut)
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str | None, dict]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
        if content:
            events.append((None, {**chunk, "choices": [{"index": 0, "delta": {"content": content}}]}))
        for index, call in enumerate(calls):
            delta = {"tool_calls": [{**call, "index": index}]}
            events.append((None, {**chunk, "choices": [{"index": 0, "delta": delta}]}))
        events.append((None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                              "usage": usage}))
        self.start_stream(handler)
        self.send_events(handler, events, cut=cut, pause=turn.pause_between_events)
        if not cut:
            handler.wfile.write(b"data: [DONE]\n\n")
            handler.wfile.flush()
