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


class ChunkedWriter:
    """An answer's body back to the agent, chunked. Chunks that arrive in the same turn of the
    loop go out in one send: a provider sends each SSE event on its own, and a send per event
    cost the stream most of its rate. Backpressure: ``drain`` waits while the agent reads slower
    than the provider sends."""

    HIGH_WATER = 256 << 10

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.pending: list[bytes] = []
        self.scheduled = False
        self.gone = False  # the agent went away: what follows is dropped

    def write(self, data: bytes) -> None:
        self.pending.append(data)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def chunk(self, data: bytes) -> None:
        self.write(b"%x\r\n%s\r\n" % (len(data), data))

    def flush(self) -> None:
        self.scheduled = False
        data, self.pending = b"".join(self.pending), []
        if data and not self.gone:
            try:
                self.writer.write(data)
            except (ConnectionError, RuntimeError):
                self.gone = True
            if self.writer.transport.is_closing():
                self.gone = True

    async def drain(self) -> None:
        """Wait while the agent's side holds more than HIGH_WATER unsent; then send what is left."""
        if self.gone:
            return
        try:
            if self.writer.transport.get_write_buffer_size() > self.HIGH_WATER:
                await self.writer.drain()
        except (ConnectionError, RuntimeError):
            self.gone = True

    async def close(self) -> None:
        """Everything written so far sent (or the agent gone)."""
        self.flush()
        if not self.gone:
            try:
                await self.writer.drain()
            except (ConnectionError, RuntimeError):
                self.gone = True
