"""The model gateway's client to the providers: HTTP/1.1 on the gateway's loop, over TLS with the
certificates verified, connections kept alive per provider host, an answer's body handed on piece
by piece as it arrives.

Why not httpx (the gateway used it first): per piece of an answer, httpx runs anyio cancel scopes
and h11 events, and an SSE answer is thousands of small pieces. bench/bench_gateway.py measured
its stream at 0.13x a direct read; this reads the socket's buffer straight.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import defaultdict
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

CONNECT_SECONDS = 15.0
READ_IDLE_SECONDS = 600.0  # an answer that sends nothing for this long is cut
READ_SIZE = 64 << 10
HEAD_LIMIT = 1 << 20


class Headers:
    """An answer's headers (names lower-cased), in the order the provider sent them."""

    def __init__(self, items: list[tuple[str, str]]):
        self._items = items

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((v for k, v in self._items if k == name), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    multi_items = items


class Connection:
    """One connection to a provider, with a watchdog that cuts it when a read waits too long."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.loop = asyncio.get_running_loop()
        self.last_read = self.loop.time()
        self.watching: asyncio.TimerHandle | None = None

    def usable(self) -> bool:
        return not self.writer.transport.is_closing() and not self.reader.at_eof()

    def watch(self) -> None:
        self.last_read = self.loop.time()
        if self.watching is None:
            self.watching = self.loop.call_later(READ_IDLE_SECONDS, self._check)

    def unwatch(self) -> None:
        if self.watching is not None:
            self.watching.cancel()
            self.watching = None

    def _check(self) -> None:
        idle = self.loop.time() - self.last_read
        if idle >= READ_IDLE_SECONDS:
            self.writer.transport.abort()  # the waiting read ends with a ConnectionError
            self.watching = None
        else:
            self.watching = self.loop.call_later(READ_IDLE_SECONDS - idle, self._check)

    def close(self) -> None:
        self.unwatch()
        self.writer.transport.abort()


class Answer:
    """A provider's answer: its status and headers, then its body as ``aiter_raw`` reads it."""

    def __init__(self, connection: Connection, method: str, status: int, reason: str, version: str,
                 headers: Headers):
        self.connection, self.status_code, self.reason_phrase, self.headers = connection, status, reason, headers
        self.no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        self.reusable = version == "HTTP/1.1" and (headers.get("connection") or "").lower() != "close"
        self.complete = False

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes as they come (chunked framing removed), to its end."""
        conn, reader = self.connection, self.connection.reader
        if self.no_body:
            self.complete = True
            return
        conn.watch()
        if (self.headers.get("transfer-encoding") or "").lower().endswith("chunked"):
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16):
                conn.last_read = conn.loop.time()
                yield await reader.readexactly(size)
                await reader.readexactly(2)
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, to the blank line
                pass
        elif (length := self.headers.get("content-length")) is not None:
            left = int(length)
            while left > 0:
                piece = await reader.read(min(left, READ_SIZE))
                if not piece:
                    raise asyncio.IncompleteReadError(b"", left)
                conn.last_read, left = conn.loop.time(), left - len(piece)
                yield piece
        else:  # the body ends with the connection
            self.reusable = False
            while piece := await reader.read(READ_SIZE):
                conn.last_read = conn.loop.time()
                yield piece
        conn.unwatch()
        self.complete = True


class Upstream:
    """The providers' connections of one event loop, kept alive per (scheme, host, port)."""

    def __init__(self, context: ssl.SSLContext):
        self.context = context
        self.idle: dict[tuple[str, str, int], list[Connection]] = defaultdict(list)

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, *, headers: list[tuple[str, str]], content: bytes):
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"{method} {target} HTTP/1.1", f"host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers),
                f"content-length: {len(content)}"]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + content
        answer = await self._send(key, method, request)
        try:
            yield answer
        finally:
            if answer.complete and answer.reusable and answer.connection.usable():
                self.idle[key].append(answer.connection)
            else:
                answer.connection.close()

    async def _send(self, key: tuple[str, str, int], method: str, request: bytes) -> Answer:
        """The request on a kept-alive connection (once more on a new one if the provider had
        closed it meanwhile), up to the answer's headers."""
        while True:
            reused = bool(self.idle[key])
            conn = self.idle[key].pop() if reused else await self._connect(key)
            if reused and not conn.usable():
                conn.close()
                continue
            try:
                conn.writer.write(request)
                await conn.writer.drain()
                conn.watch()
                head = await conn.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                conn.close()
                if reused:
                    continue
                raise
            conn.unwatch()
            return _answer(conn, method, head)

    async def _connect(self, key: tuple[str, str, int]) -> Connection:
        scheme, host, port = key
        tls = {"ssl": self.context, "server_hostname": host} if scheme == "https" else {}
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=HEAD_LIMIT, **tls),
                                                CONNECT_SECONDS)
        return Connection(reader, writer)


def _answer(conn: Connection, method: str, head: bytes) -> Answer:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not status.isdigit():
        raise ConnectionError(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    return Answer(conn, method, int(status), reason, version, Headers(headers))


def upstream_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates verified against the system's CAs (and ``ca_file``'s, an operator's or a test's)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(ca_file)
    return context


def upstream_allowed(url: str) -> bool:
    """HTTPS, or plain HTTP to a provider on this machine's loopback (a local model server)."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))
