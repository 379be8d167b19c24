"""HTTP/1.1 requests off an agent's connection to the model gateway (``harnesses/gateway.py``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_REQUEST_BYTES = 64 << 20


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool = True

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request off the agent's connection; None at its end (or when it is not HTTP)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    request = Request(parts[0].upper(), parts[1], headers, b"")
    request.keep_alive = (request.header("connection") or "").lower() != "close" and parts[2] == "HTTP/1.1"
    try:
        if (request.header("transfer-encoding") or "").lower() == "chunked":
            request.body = await _read_chunked(reader)
        elif length := int(request.header("content-length") or 0):
            if length > MAX_REQUEST_BYTES:
                return None
            request.body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ValueError, ConnectionError):
        return None
    return request


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_REQUEST_BYTES:
            raise ValueError("request body too large")
