"""The worker's egress proxy for ``agent.network: model``: the only way out of an agent's
sandbox, to the harness's API hosts and nothing else.

The sandbox has its own network namespace (only loopback). Before the agent starts (bwrap waits
on its ``--block-fd``), the worker binds TCP listeners on 127.0.0.1 *inside* that namespace
(``listen_in_namespace``: a short-lived child enters it, binds, and hands the sockets back) and
serves them here, in the worker: nothing of the proxy runs inside the sandbox, and the agent's
start pays no interpreter start.

- 127.0.0.1:3128 inside (HTTPS_PROXY/HTTP_PROXY) speaks just enough HTTP proxy: ``CONNECT
  host:port`` (HTTPS) and absolute-form requests (plain HTTP);
- 127.0.0.1:PORT inside, for each loopback destination allowed (a model endpoint in
  ANTHROPIC_BASE_URL, say), reaches 127.0.0.1:PORT of the worker.

An allowed destination is connected and relayed; any other gets ``403`` and is reported to
``on_refused(host, port)`` (the runner logs it, records an event and keeps it in the job's
result). stdlib asyncio: one event loop thread per worker process, the job's listeners on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Callable
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
    then just its listeners on it (a thread and a loop per job cost more than the listeners)."""
    global _shared_loop, _shared_pid
    with _shared_lock:
        # A forked child (a prefork pool process) has the parent's loop but not its thread.
        if _shared_loop is None or _shared_loop.is_closed() or _shared_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, daemon=True, name="egress-proxy").start()
            _shared_loop, _shared_pid = loop, os.getpid()
        return _shared_loop


class EgressProxy:
    def __init__(self, allowed: set[tuple[str, int]], on_refused: Callable[[str, int], None] | None = None):
        self.allowed = {(("127.0.0.1" if h == "localhost" else h), p) for h, p in allowed}
        self.on_refused = on_refused or (lambda _h, _p: None)
        self.refused: list[str] = []
        self._loop = shared_loop()
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task] = set()  # this job's connections (the loop serves other jobs too)

    def serve(self, listener: socket.socket, forward_to: int | None = None) -> None:
        """Serve a listener bound inside the sandbox: the HTTP proxy, or (``forward_to``) a
        loopback port of the worker's host."""
        listener.setblocking(False)
        handle = self._handle if forward_to is None else (lambda r, w: self._forward(r, w, forward_to))
        future = asyncio.run_coroutine_threadsafe(asyncio.start_server(handle, sock=listener), self._loop)
        self._servers.append(future.result(timeout=10))

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for task in list(self._tasks):
                task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)

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

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            if not self.permits("127.0.0.1", port):
                self._refuse("127.0.0.1", str(port))
                writer.close()
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout=15)
            except (TimeoutError, OSError):
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        finally:
            self._tasks.discard(task)

    def _refuse(self, host: str, port: str) -> None:
        self.refused.append(f"{host}:{port}")
        with contextlib.suppress(Exception):
            self.on_refused(host, int(port) if port.isdigit() else 0)

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
            self._refuse(host, port)
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


# --- listeners inside the sandbox's network namespace ------------------------------------------
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


def listen_in_namespace(pid: int, ports: list[int]) -> list[socket.socket]:
    """TCP listeners on 127.0.0.1:``ports`` inside the network namespace of ``pid`` (bwrap's
    first child), for this process to serve. A socket stays in the namespace it was made in: a
    forked child enters the sandbox's user namespace (whose owner this user is, so it may) and
    network namespace, binds, and sends the sockets back over a socketpair."""
    here, there = socket.socketpair()
    namespaces = [os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY) for kind in ("user", "net")]
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child; its outcome is checked by the parent
        code = 1
        try:
            code = _bind_and_send(there, namespaces, ports)
        finally:
            os._exit(code)
    for fd in namespaces:
        os.close(fd)
    there.close()
    try:
        _, status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise OSError(f"could not listen inside the sandbox's network namespace (exit "
                          f"{os.waitstatus_to_exitcode(status)})")
        _, fds, _, _ = socket.recv_fds(here, 16, len(ports))
    finally:
        here.close()
    return [socket.socket(fileno=fd) for fd in fds]


def _bind_and_send(there: socket.socket, namespaces: list[int], ports: list[int]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    user, net = namespaces
    # root may enter the network namespace from here; another user first enters the user namespace
    if os.geteuid() != 0 and libc.setns(user, CLONE_NEWUSER) != 0:
        return 3
    if libc.setns(net, CLONE_NEWNET) != 0:
        return 4
    listeners = []
    for port in ports:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listeners.append(listener)
    socket.send_fds(there, [b"ok"], [s.fileno() for s in listeners])
    return 0
