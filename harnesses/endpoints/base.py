"""What every scripted model endpoint shares: the script's steps (``Turn``, ``Write``, ``Run``,
``Say``, ``Fail``), the loopback HTTP server that logs each request whole, and ``ScriptedEndpoint``,
the base each wire protocol's module builds on. The package's ``__init__`` says what the
endpoints are for and picks one per protocol (``endpoint_for``).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar


@dataclass
class Write:
    """The model writes ``content`` to ``path`` (relative to the agent's working directory)."""

    path: str
    content: str


@dataclass
class Run:
    """The model runs ``command`` in the agent's shell tool."""

    command: str


@dataclass
class Say:
    text: str


@dataclass
class Turn:
    """One model reply. ``usage``: the tokens this reply reports (input, output, cached input)."""

    actions: list[Write | Run | Say] = field(default_factory=list)
    input_tokens: int = 1000
    output_tokens: int = 100
    cached_input_tokens: int = 0
    delay: float = 0.0  # seconds before the reply starts
    pause_between_events: float = 0.0  # seconds between stream events (a slow model)
    # Set: the reply starts once this is set, ``delay`` its deadline (a test holds a reply until
    # what it waits for has happened, the agent killed, rather than for a fixed time).
    released: threading.Event | None = None


@dataclass
class Fail:
    """A reply that fails: ``kind`` is ``429`` | ``500`` | ``drop`` (connection closed with no
    reply) | ``cut`` (the stream starts, then stops mid-event)."""

    kind: str
    retry_after: int = 1
    delay: float = 0.0


Step = Turn | Fail


def commit_script(path: str = "hello.txt", content: str = "hello from the scripted model\n",
                  message: str = "feat(WP01): add hello") -> list[Step]:
    """The smallest real piece of work: write one file, commit it, say it is done."""
    return [
        Turn([Say("Writing the file."), Write(path, content)]),
        Turn([Run(f"git add {path} && git commit -q -m '{message}'")]),
    ]


@dataclass
class LoggedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    consumed_step: int | None  # index of the script step it got, None for a side request
    route: str | None = None  # the ``scripts_by_workdir`` key whose script it followed

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


# The HTTP replies every endpoint writes (``ScriptedEndpoint.send_json`` and the others).
def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict,
              headers: dict[str, str] | None = None, *, cut: bool = False) -> None:
    """A JSON reply; ``cut``: announce the whole length, send half, close the connection."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data[: len(data) // 2] if cut else data)
    handler.wfile.flush()
    if cut:
        handler.close_connection = True
        handler.connection.shutdown(2)
        handler.connection.close()

def start_stream(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream")
    handler.send_header("cache-control", "no-cache")
    handler.send_header("connection", "close")
    handler.end_headers()
    handler.close_connection = True

def send_events(handler: BaseHTTPRequestHandler, events: list[tuple[str | None, dict]], *, cut: bool,
                pause: float = 0.0) -> None:
    """SSE events (``event:`` name or None, data). ``cut``: send the first event whole, then
    half of the next one, and close the connection mid-event."""
    chunks = [(f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n" for name, data in events]
    if cut:
        chunks = chunks[:1] + [chunks[1][: len(chunks[1]) // 2]] if len(chunks) > 1 else chunks[:1]
    try:
        for chunk in chunks:
            handler.wfile.write(chunk.encode())
            handler.wfile.flush()
            if pause:
                time.sleep(pause)
    except (BrokenPipeError, ConnectionResetError):
        return
    if cut:
        handler.connection.shutdown(2)
        handler.connection.close()


class ScriptedEndpoint:
    """Base for the protocol modules: the server, the script cursor and the request log."""

    protocol: ClassVar[str] = ""

    def __init__(self, script: list[Step] | None = None, *, model: str = "scripted-model",
                 closing_text: str = "Done: the work is committed.",
                 scripts_by_workdir: dict[str, list[Step]] | None = None) -> None:
        self.script = list(script or [])
        # Several agents at once: a request whose working directory contains a key follows
        # that key's script (its own cursor); the others follow ``script``.
        self.routes = {key: list(steps) for key, steps in (scripts_by_workdir or {}).items()}
        self._cursors = {key: 0 for key in self.routes}
        self.model = model
        self.closing_text = closing_text
        self.requests: list[LoggedRequest] = []
        self._cursor = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = 0
        # What the endpoint billed: the tokens of every reply it sent whole (a cut one is not billed)
        self.billed = {"calls": 0, "input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0}
        self.tls: ssl.SSLContext | None = None

    # --- life cycle -----------------------------------------------------------------
    def bill(self, turn: Turn, *, cut: bool = False) -> None:
        if cut:
            return
        with self._lock:
            self.billed["calls"] += 1
            self.billed["input_tokens"] += turn.input_tokens
            self.billed["cached_input_tokens"] += turn.cached_input_tokens
            self.billed["output_tokens"] += turn.output_tokens

    def serve_tls(self, context: ssl.SSLContext) -> ScriptedEndpoint:
        """Answer over HTTPS with ``context``'s certificate (call before ``start``)."""
        self.tls = context
        return self

    def start(self, host: str = "127.0.0.1", port: int = 0) -> ScriptedEndpoint:
        """Serve on ``host:port`` (default: loopback, a free port; docker/model_endpoint.py serves a container)."""
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: the request log is the record
                pass

            def do_GET(self) -> None:
                endpoint._handle(self, "GET")

            def do_POST(self) -> None:
                endpoint._handle(self, "POST")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"{self.protocol}-endpoint")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedEndpoint:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server, "start() the endpoint first"
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def agent_requests(self) -> list[LoggedRequest]:
        """The requests that consumed a script step (the agent loop), in order."""
        return [r for r in self.requests if r.consumed_step is not None]

    def next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}_{self._ids:04d}"

    # --- protocol hooks --------------------------------------------------------------
    def is_agent_request(self, path: str, body: dict | None) -> bool:
        raise NotImplementedError

    def workdir_of(self, body: dict) -> str | None:
        """The agent's working directory as the request names it (for ``scripts_by_workdir``)."""
        return None

    def reply_side(self, handler: BaseHTTPRequestHandler, path: str, body: dict | None) -> None:
        raise NotImplementedError

    def reply_turn(self, handler: BaseHTTPRequestHandler, turn: Turn, body: dict, *, cut: bool = False) -> None:
        raise NotImplementedError

    # --- dispatch ----------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = handler.path
        agent = method == "POST" and isinstance(body, dict) and self.is_agent_request(path, body)
        route = self._route(body) if agent else None
        script = self.routes[route] if route else self.script
        with self._lock:
            index = (self._cursors[route] if route else self._cursor) if agent else None
            if agent and route:
                self._cursors[route] += 1
            elif agent:
                self._cursor += 1
            self.requests.append(LoggedRequest(method, path, dict(handler.headers.items()), body, index, route))
        if not agent:
            self.reply_side(handler, path, body)
            return
        step = script[index] if index < len(script) else Turn([Say(self.closing_text)])
        released = getattr(step, "released", None)
        if step.delay and released is not None:
            released.wait(step.delay)
        elif step.delay:
            time.sleep(step.delay)
        if isinstance(step, Turn):
            self.reply_turn(handler, step, body)
        else:
            self._fail(handler, step, body)

    def _route(self, body: dict) -> str | None:
        workdir = self.workdir_of(body) if self.routes else None
        return next((key for key in self.routes if workdir and key in workdir), None)

    def _fail(self, handler: BaseHTTPRequestHandler, fail: Fail, body: dict) -> None:
        if fail.kind == "429":
            # the reset in the message too, as providers say it (OpenAI: "Please try again in 6.5s"):
            # the CLI passes the message on, not the header
            message = f"Rate limited by the scripted endpoint. Please try again in {fail.retry_after}s."
            self.send_json(handler, 429, self.error_body(429, "rate_limit_error", message),
                           {"retry-after": str(fail.retry_after)})
        elif fail.kind == "500":
            self.send_json(handler, 500, self.error_body(500, "api_error", "Internal server error (scripted)"))
        elif fail.kind == "drop":
            handler.close_connection = True
            handler.connection.close()
        elif fail.kind == "cut":
            self.reply_turn(handler, Turn([Say("This reply is cut short")]), body, cut=True)
        else:
            raise ValueError(f"unknown failure kind {fail.kind!r}")

    def error_body(self, status: int, kind: str, message: str) -> dict:
        return {"type": "error", "error": {"type": kind, "message": message}}

    # --- writing ------------------------------------------------------------------------
    send_json = staticmethod(send_json)
    start_stream = staticmethod(start_stream)
    send_events = staticmethod(send_events)
