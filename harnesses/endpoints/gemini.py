"""The Gemini API (``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``) as Gemini CLI
reads it: SSE ``data:`` chunks, each a ``GenerateContentResponse`` (``candidates[0].content.parts``
with ``text`` or ``functionCall`` {name, args}, ``finishReason`` on the last one, and
``usageMetadata`` {promptTokenCount, candidatesTokenCount, cachedContentTokenCount}).
Non-streaming ``:generateContent`` (the CLI's side calls) and ``:countTokens`` are answered too.

Gemini CLI: point it here with ``GOOGLE_GEMINI_BASE_URL`` (and any ``GEMINI_API_KEY``). A
``Write`` step becomes its ``write_file`` tool (absolute path), a ``Run`` step
``run_shell_command``.
"""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler

from harnesses.endpoints.base import Run, Say, ScriptedEndpoint, Turn, Write
from harnesses.endpoints.openai_responses import shell_line

WORKDIR = re.compile(r"Workspace Directories:\*\*\\n\s*- (/[^\s\"\\`']+)")


def _tool_names(body: dict) -> set[str]:
    return {d.get("name") for t in body.get("tools") or [] if isinstance(t, dict)
            for d in t.get("functionDeclarations") or [] if isinstance(d, dict)}


class GeminiEndpoint(ScriptedEndpoint):
    protocol = "gemini"

    def is_agent_request(self, path: str, body: dict | None) -> bool:
        return ":streamGenerateContent" in path and bool(body and body.get("tools"))

    def reply_side(self, handler: BaseHTTPRequestHandler, path: str, body: dict | None) -> None:
        if ":countTokens" in path:
            self.send_json(handler, 200, {"totalTokens": 100})
        elif ":streamGenerateContent" in path or ":generateContent" in path:
            self.reply_turn(handler, Turn([Say("ok")], input_tokens=10, output_tokens=1), body or {},
                            stream=":streamGenerateContent" in path)
        else:
            self.send_json(handler, 404, self.error_body(404, "NOT_FOUND", f"no {path} here"))

    def error_body(self, status: int, kind: str, message: str) -> dict:
        statuses = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 404: "NOT_FOUND"}
        return {"error": {"code": status, "message": message, "status": statuses.get(status, kind)}}

    def parts(self, turn: Turn, body: dict) -> list[dict]:
        tools = _tool_names(body)
        found = WORKDIR.search(json.dumps(body.get("systemInstruction") or "")) or WORKDIR.search(
            json.dumps(body.get("contents") or ""))
        cwd = found.group(1).rstrip(".,;:") if found else None
        parts = []
        for action in turn.actions:
            if isinstance(action, Say):
                parts.append({"text": action.text})
            elif isinstance(action, Write) and "write_file" in tools and cwd:
                parts.append({"functionCall": {"name": "write_file", "args": {
                    "file_path": f"{cwd}/{action.path}", "content": action.content}}})
            elif isinstance(action, Write | Run):
                parts.append({"functionCall": {"name": "run_shell_command", "args": {
                    "command": shell_line(action), "description": "scripted step"}}})
        return parts

    def reply_turn(self, handler: BaseHTTPRequestHandler, turn: Turn, body: dict, *, cut: bool = False,
                   stream: bool = True) -> None:
        self.bill(turn, cut=cut)
        parts = self.parts(turn, body)
        usage = {"promptTokenCount": turn.input_tokens, "candidatesTokenCount": turn.output_tokens,
                 "cachedContentTokenCount": turn.cached_input_tokens,
                 "totalTokenCount": turn.input_tokens + turn.output_tokens}
        chunks = [{"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}],
                   "modelVersion": self.model} for part in parts] or [
            {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "index": 0}]}]
        chunks[-1]["candidates"][0]["finishReason"] = "STOP"
        chunks[-1]["usageMetadata"] = usage
        if not stream:
            whole = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                                     "index": 0}], "usageMetadata": usage, "modelVersion": self.model}
            self.send_json(handler, 200, whole, cut=cut)
            return
        self.start_stream(handler)
        self.send_events(handler, [(None, chunk) for chunk in chunks], cut=cut, pause=turn.pause_between_events)
