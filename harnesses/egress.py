"""The worker's egress proxy for ``agent.network: model``: the only way out of an agent's
sandbox, to the harness's API hosts and nothing else.

It listens on a unix socket mounted into the sandbox (harnesses/egress_forwarder.py relays to it
from 127.0.0.1 inside) and speaks just enough HTTP proxy: ``CONNECT host:port`` (HTTPS) and
absolute-form requests (plain HTTP). An allowed destination is connected and relayed; any other
gets ``403`` and is reported to ``on_refused(host, port)`` (the runner logs it, records an event
and keeps it in the job's result). stdlib asyncio: one event loop thread per worker process,
one unix server on it per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

# Per harness: the API hosts (port 443) its CLI needs. Extended by agent.allowed_hosts.
DEFAULT_HOSTS: dict[str, tuple[str, ...]] = {
    "claude-code": ("api.anthropic.com", "statsig.anthropic.com", "console.anthropic.com"),
    "codex": ("api.openai.com", "chatgpt.com", "auth.openai.com"),
    "gemini": ("generativelanguage.googleapis.com", "cloudcode-pa.googleapis.com", "oauth2.googleapis.com"),
    "aider": ("api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com", "openrouter.ai",
              "api.deepseek.com"),
    "opencode": ("api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com", "openrouter.ai",
                 "models.dev"),
    "command": (),
}
BASE_URL_NAMES = ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_BASE", "GOOGLE_GEMINI_BASE_URL")
HEAD_LIMIT = 16 * 1024


def base_url_destination(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    return parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)


def allowed_destinations(harness: str, config: dict, env: dict[str, str]) -> set[tuple[str, int]]:
    """(host, port) pairs the agent of ``harness`` may reach: the harness's API hosts, the config's
    ``agent.allowed_hosts`` (``host`` or ``host:port``), and the host:port of each base URL the
    harness is configured with (a codex provider's ``base_url`` included)."""
    found = {(h, 443) for h in DEFAULT_HOSTS.get(harness, ())}
    for entry in config.get("allowed_hosts") or []:
        host, _, port = str(entry).rpartition(":") if ":" in str(entry) else (str(entry), "", "443")
        found.add((host.lower(), int(port)))
    urls = [env[n] for n in BASE_URL_NAMES if env.get(n)]
    for provider in ((config.get("codex") or {}).get("model_providers") or {}).values():
        if isinstance(provider, dict) and provider.get("base_url"):
            urls.append(provider["base_url"])
    for url in urls:
        destination = base_url_destination(url)
        if destination:
            found.add(destination)
    return found


def loopback_ports(destinations: set[tuple[str, int]]) -> list[int]:
    """Loopback destinations are forwarded to the same port inside the sandbox."""
    return sorted(port for host, port in destinations if host in ("127.0.0.1", "localhost", "::1"))


_shared_loop: asyncio.AbstractEventLoop | None = None
_shared_pid = 0
_shared_lock = threading.Lock()


def shared_loop() -> asyncio.AbstractEventLoop:
    """One event loop thread per worker process, started with its first proxy: each job's proxy is
    then just a unix server on it (a thread and a loop per job cost more than the server)."""
    global _shared_loop, _shared_pid
    with _shared_lock:
        # A forked child (a prefork pool process) has the parent's loop but not its thread.
        if _shared_loop is None or _shared_loop.is_closed() or _shared_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, daemon=True, name="egress-proxy").start()
            _shared_loop, _shared_pid = loop, os.getpid()
        return _shared_loop


class EgressProxy:
    def __init__(self, socket_path: Path, allowed: set[tuple[str, int]],
                 on_refused: Callable[[str, int], None] | None = None):
        self.socket_path = socket_path
        self.allowed = {(("127.0.0.1" if h == "localhost" else h), p) for h, p in allowed}
        self.on_refused = on_refused or (lambda _h, _p: None)
        self.refused: list[str] = []
        self._loop = shared_loop()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()  # this job's connections (the loop serves other jobs too)

    def start(self) -> EgressProxy:
        future = asyncio.run_coroutine_threadsafe(asyncio.start_unix_server(self._handle, path=str(self.socket_path)),
                                                  self._loop)
        self._server = future.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self.socket_path.unlink(missing_ok=True)

    def permits(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return (("127.0.0.1" if host == "localhost" else host), port) in self.allowed

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1", errors="replace")
        method, _, rest = line.partition(" ")
        target = rest.rsplit(" ", 1)[0]
        if method.upper() == "CONNECT":
            host, _, port = target.rpartition(":")
            forward = b""
        else:  # absolute-form: GET http://host:port/path HTTP/1.1
            parts = urlsplit(target)
            host, port = parts.hostname or "", str(parts.port or 80)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            forward = head.replace(target.encode("latin-1"), path.encode("latin-1"), 1)
        if not host or not port.isdigit() or not self.permits(host, int(port)):
            self.refused.append(f"{host}:{port}")
            with contextlib.suppress(Exception):
                self.on_refused(host, int(port) if port.isdigit() else 0)
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout=15)
        except (TimeoutError, OSError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            writer.close()
            return
        if forward:
            up_writer.write(forward)
        else:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()
