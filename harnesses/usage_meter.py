"""The usage a provider reports in its answer, read as the answer streams through the model
gateway (``harnesses/gateway.py``), in any of the four wire protocols."""

from __future__ import annotations

import contextlib
import json

from harnesses.base import Usage


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# What an event that carries usage, the model or the answer's end has in it (``usageMetadata`` too)
MARKERS = (b"usage", b"message_stop", b"response.incomplete", b"response.failed", b"finishReason", b"[DONE]",
           b"modelVersion")


class UsageMeter:
    """Reads the usage figures out of an answer's body as it streams (SSE or one JSON body), in
    any of the four wire protocols; each figure is the latest the provider reported."""

    def __init__(self, event_stream: bool):
        self.event_stream = event_stream
        self.buffer = bytearray()
        self.separator = b""  # what ends an event in this stream: a blank line, LF or CRLF
        self.figures: dict[str, int] = {}
        self.model = ""
        self.complete = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.event_stream:
            return
        start = 0
        while (end := self._event_end(start)) >= 0:
            self._event(bytes(self.buffer[start:end]))
            start = end + len(self.separator)
        del self.buffer[:start]  # once per piece: an event at a time would copy the rest each time

    def _event_end(self, start: int) -> int:
        if self.separator:
            return self.buffer.find(self.separator, start)
        found = [(i, sep) for sep in (b"\n\n", b"\r\n\r\n") if (i := self.buffer.find(sep, start)) >= 0]
        if not found:
            return -1
        end, self.separator = min(found)
        return end

    def finish(self) -> None:
        if self.event_stream:
            if self.buffer.strip():
                self._event(bytes(self.buffer))  # a last event with no blank line after it
            return
        with contextlib.suppress(ValueError):
            body = json.loads(self.buffer)
            for obj in body if isinstance(body, list) else [body]:
                self.absorb(obj)
            self.complete = True

    def _event(self, raw: bytes) -> None:
        if not any(marker in raw for marker in MARKERS):
            return  # a delta of text or a tool's input: no figure, no end (most of a stream)
        data = b"\n".join(line[5:].strip() for line in raw.splitlines() if line.startswith(b"data:"))
        if data == b"[DONE]":
            self.complete = True
            return
        with contextlib.suppress(ValueError):
            self.absorb(json.loads(data))

    def absorb(self, obj: object) -> None:
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind in ("message_stop", "response.completed", "response.incomplete", "response.failed"):
            self.complete = True
        inner = obj.get("message") if kind == "message_start" else obj.get("response") if isinstance(
            obj.get("response"), dict) else obj
        if isinstance(inner, dict) and isinstance(inner.get("model") or inner.get("modelVersion"), str):
            self.model = inner.get("model") or inner.get("modelVersion")
        for usage in (inner.get("usage") if isinstance(inner, dict) else None, obj.get("usage"),
                      obj.get("usageMetadata")):
            if isinstance(usage, dict):
                self._usage(usage)
        if isinstance(obj.get("usageMetadata"), dict) and any(
                (c or {}).get("finishReason") for c in obj.get("candidates") or [] if isinstance(c, dict)):
            self.complete = True

    def _usage(self, usage: dict) -> None:
        details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details")
        found = {"input": usage.get("input_tokens", usage.get("prompt_tokens", usage.get("promptTokenCount"))),
                 # Anthropic's cache reads and writes are not in its input_tokens; OpenAI's and
                 # Gemini's cached tokens are part of theirs
                 "cache_read": usage.get("cache_read_input_tokens"),
                 "cache_creation": usage.get("cache_creation_input_tokens"),
                 "cached_within": (details.get("cached_tokens") if isinstance(details, dict)
                                   else usage.get("cachedContentTokenCount")),
                 "output": usage.get("output_tokens", usage.get("completion_tokens",
                                                                usage.get("candidatesTokenCount"))),
                 "thoughts": usage.get("thoughtsTokenCount")}
        self.figures.update({k: v for k, v in found.items() if isinstance(v, int) and not isinstance(v, bool)})

    @property
    def reported(self) -> bool:
        return bool(self.figures)

    def usage(self) -> Usage:
        """Input counts every input token (cached ones too), as the adapters count them."""
        f = {k: _int(v) for k, v in self.figures.items()}
        cached = f.get("cache_read", 0) + f.get("cached_within", 0)
        return Usage(input_tokens=f.get("input", 0) + f.get("cache_read", 0) + f.get("cache_creation", 0),
                     cached_input_tokens=cached, output_tokens=f.get("output", 0) + f.get("thoughts", 0))
