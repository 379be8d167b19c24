"""The model gateway: every model call of an agent goes through the worker, which holds the key.

The agent's CLI is pointed at ``http://127.0.0.1:3129/<provider>`` (inside its sandbox, listening
in the worker like the egress proxy: ``harnesses.egress``) with a per-job placeholder key. For
each request the gateway

1. routes by prefix (``/anthropic``, ``/openai``, ``/gemini``) and refuses, with a provider-shaped
   403 that is also recorded (``refused``), any other prefix or any path the provider's model API
   does not have (``ALLOWED_PATHS``);
2. checks the placeholder (``x-api-key``, ``authorization: Bearer``, ``x-goog-api-key`` or
   ``?key=``), drops it and injects the worker's real credential;
3. asks ``admit`` (budgets, parked accounts) before the money is spent: a refusal is a
   provider-shaped 403 the CLI prints and does not retry;
4. forwards to the provider (HTTPS, certificates verified; plain HTTP only to a loopback
   provider) and streams the answer back chunk by chunk as it arrives, unchanged;
5. reads the usage the provider reports in the answer (``UsageMeter``: Anthropic
   message_start/message_delta, Responses ``response.completed``, Chat ``usage`` chunks, Gemini
   ``usageMetadata``) and hands one ``GatewayCall`` to ``on_call`` as the call ends. A call whose
   client went away (the agent was killed) is still read to its end and billed.

Why our own proxy and not LiteLLM's: LiteLLM's pass-through routes do the same thing (a path
prefix per provider, a virtual key mapped to the provider key, cost from the stream) but bring a
FastAPI server, its own key database and hundreds of dependencies into the worker; this is
stdlib asyncio on the egress proxy's loop, its upstream client too (``harnesses.upstream``).
Like Docker's sandbox credential proxy, the agent only ever sees a sentinel value.

One job's side (its routes, calls, refusals and spend tally) is ``harnesses.gateway_job``,
importable from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, urlencode, urlsplit

from harnesses.account_parks import reset_time
from harnesses.egress import shared_loop
from harnesses.gateway_job import GatewayCall, GatewayJob, error_body, parked_refusal
from harnesses.gateway_job import Refusal as Refusal  # re-exported (`as`): imported from here
from harnesses.gateway_job import Route as Route
from harnesses.http1 import ChunkedWriter, Request, read_request
from harnesses.jsonlines import cost_of, price_for
from harnesses.upstream import Upstream, upstream_allowed, upstream_context
from harnesses.usage_meter import UsageMeter

GATEWAY_PORT = 3129  # inside the sandbox: 127.0.0.1:3129 is the worker's model gateway
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding"}
AUTH_HEADERS = {"x-api-key", "authorization", "x-goog-api-key", "api-key"}
# The model APIs' paths (relative to the provider's base URL); anything else is refused.
ALLOWED_PATHS = {
    "anthropic": re.compile(r"^/v1/(messages(/count_tokens)?|models(/[\w.:-]+)?)$"),
    "openai": re.compile(r"^(/v1)?/(responses|chat/completions|completions|models(/[\w.:/-]+)?)$"),
    "gemini": re.compile(r"^/v1(beta|alpha)?/models"
                         r"(/[\w.-]+(:(generateContent|streamGenerateContent|countTokens))?)?$"),
}
REASONS = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests", 502: "Bad Gateway"}
DEFAULT_BASES = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1",
                 "gemini": "https://generativelanguage.googleapis.com"}


_clients: dict[tuple[int, str], Upstream] = {}
# ``on_call`` writes the database: threads of its own, never the loop's
_BOOKS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-books")


def _client(ca_file: str | None) -> Upstream:
    """One upstream client per event loop (kept-alive TLS connections to each provider)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), ca_file or "")
    if key not in _clients:
        _clients[key] = Upstream(upstream_context(ca_file))
    return _clients[key]


class Gateway:
    """Serves one job's gateway listeners on the worker's shared egress loop."""

    def __init__(self, job: GatewayJob, *, ca_file: str | None = None):
        self.job = job
        self.ca_file = ca_file
        self._loop = shared_loop()
        self._servers: list[asyncio.AbstractServer] = []
        self._calls: set[asyncio.Future] = set()  # in flight: read to their end even after stop()

    def serve(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        future = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._connection, sock=listener), self._loop)
        self._servers.append(future.result(timeout=10))

    def listen_locally(self) -> int:
        """A listener on the worker's own loopback (no sandbox): its port."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.serve(listener)
        return listener.getsockname()[1]

    def stop(self) -> None:
        """No new connections; calls in flight go on to their end (and are billed)."""
        async def close() -> None:
            for server in self._servers:
                server.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)

    def drain(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` seconds) for the calls in flight to end; True when none is left."""
        async def wait() -> bool:
            pending = [t for t in self._calls if not t.done()]
            if pending:
                _done, left = await asyncio.wait(pending, timeout=timeout)
                return not left
            return True

        try:
            return asyncio.run_coroutine_threadsafe(wait(), self._loop).result(timeout=timeout + 5)
        except Exception:  # noqa: BLE001 - a stuck loop: report not drained
            return False

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_request(reader)) is not None:
                # the call is a task of its own: the agent's connection closing does not cancel it
                task = asyncio.ensure_future(self._exchange(request, writer))
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)
                if not await asyncio.shield(task) or not request.keep_alive:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _exchange(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """One call: route, check, admit, forward, stream back, meter, record. True: keep the
        agent's connection open for its next request."""
        parts = urlsplit(request.target)
        provider, _, rest = parts.path.lstrip("/").partition("/")
        call = GatewayCall(provider=provider, method=request.method, path="/" + rest)
        route = self.job.routes.get(provider)
        if route is None or not ALLOWED_PATHS.get(provider, re.compile("^$")).match(call.path):
            return await self._refuse(writer, call, 403, "not_found",
                                      f"the model gateway does not forward {request.method} {parts.path}")
        call.account = route.account
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        if _presented(request, query) != self.job.placeholder:
            return await self._refuse(writer, call, 401, "authentication_error",
                                      "the model gateway did not get this job's key")
        call.model = _requested_model(request.body, call.path)
        if (until := self.job.parks.parked_until(route.account)) is not None:
            return await self._refuse_parked(writer, call, until)
        refusal = self.job.admit(call)  # in memory, on the loop: a thread hop would cost more than the check
        if refusal is not None and refusal.recheck is not None:  # e.g. the job's reservation is used up
            refusal = await self._loop.run_in_executor(_BOOKS, refusal.recheck, call)
        if refusal is not None:
            return await self._refuse(writer, call, refusal.status, refusal.kind, refusal.message)
        self.job.reserve(call)
        query = [(k, v) for k, v in query if k != "key"]
        url = route.base_url.rstrip("/") + call.path + (f"?{urlencode(query)}" if query else "")
        if not upstream_allowed(url):
            return await self._refuse(writer, call, 502, "api_error",
                                      f"the model gateway forwards only over HTTPS (base URL {route.base_url})")
        headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP | AUTH_HEADERS]
        headers += [*route.auth.items(), ("accept-encoding", "identity")]
        return await self._forward(writer, call, url, request, headers)

    async def _forward(self, writer: asyncio.StreamWriter, call: GatewayCall, url: str, request: Request,
                       headers: list[tuple[str, str]]) -> bool:
        started = time.monotonic()
        client = _client(self.ca_file)
        meter: UsageMeter | None = None
        try:
            async with client.stream(request.method, url, headers=headers, content=request.body) as response:
                call.status = response.status_code
                call.first_byte_ms = (time.monotonic() - started) * 1000
                if call.status == 429 and (until := reset_time(response.headers, time.time())) is not None:
                    self._limited(call, until)
                meter = UsageMeter("text/event-stream" in response.headers.get("content-type", ""))
                keep = await self._stream_back(writer, call, response, meter)
        except Exception as exc:  # noqa: BLE001 - TLS, connect, protocol: the agent gets a 502 and it is recorded
            call.duration_ms = (time.monotonic() - started) * 1000
            if meter is not None and not call.tallied:  # cut mid-answer: billed what the provider reported
                meter.finish()
                self._settle(call, meter)
            call.outcome, call.detail = "upstream_error", f"{type(exc).__name__}: {exc}"[:300]
            if call.first_byte_ms is None:
                return await self._refuse(writer, call, 502, "api_error",
                                          f"the model gateway could not reach the provider ({call.detail})")
            self._record(call)
            return False
        call.duration_ms = (time.monotonic() - started) * 1000
        self._record(call)
        return keep and not call.client_gone

    async def _stream_back(self, writer: asyncio.StreamWriter, call: GatewayCall, response, meter: UsageMeter) -> bool:
        """The status, headers and body as the provider sent them, each chunk written as it comes
        (chunked to the agent, whatever the provider's framing: the call is billed and tallied
        before its last chunk, so the agent's next call is admitted knowing what this one cost)."""
        head = [f"HTTP/1.1 {response.status_code} {response.reason_phrase or 'OK'}"]
        head += [f"{k}: {v}" for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP]
        head.append("transfer-encoding: chunked")
        out = ChunkedWriter(writer)
        out.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        async for chunk in response.aiter_raw():
            meter.feed(chunk)
            if chunk:
                out.chunk(chunk)
                await out.drain()
            call.client_gone = call.client_gone or out.gone
        meter.finish()
        self._settle(call, meter)
        self.job.add(call)
        out.write(b"0\r\n\r\n")
        await out.close()
        call.client_gone = call.client_gone or out.gone
        return True

    async def _write(self, writer: asyncio.StreamWriter, call: GatewayCall, data: bytes) -> None:
        if call.client_gone:
            return
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionError, RuntimeError):
            call.client_gone = True  # the agent is gone: go on reading the answer, to bill it

    def _settle(self, call: GatewayCall, meter: UsageMeter) -> None:
        call.usage, call.reported = meter.usage(), meter.reported
        call.model = meter.model or call.model
        call.cost_usd = cost_of(call.usage, price_for(call.model, self.job.prices)) if call.model else None
        if call.status < 400 and not meter.complete:
            call.outcome, call.detail = "truncated", "the provider's answer ended before its last event"

    def _limited(self, call: GatewayCall, until: float) -> None:
        """A 429 with a reset: the account is parked on this worker now, and for the farm off the loop."""
        self.job.parks.park(call.account, until)
        self.job.parked_until = max(until, self.job.parked_until or 0.0)
        self._calls.add(self._loop.run_in_executor(_BOOKS, _quietly, lambda c: self.job.on_limit(c, until), call))

    async def _refuse_parked(self, writer: asyncio.StreamWriter, call: GatewayCall, until: float) -> bool:
        """A call on a parked account never reaches the provider; the job is parked by its runner."""
        self.job.parked_until = max(until, self.job.parked_until or 0.0)
        message, retry_after = parked_refusal(call.account, until)
        return await self._refuse(writer, call, 429, "rate_limit_error", message,
                                  extra=f"retry-after: {retry_after}\r\n")

    async def _refuse(self, writer: asyncio.StreamWriter, call: GatewayCall, status: int, kind: str,
                      message: str, extra: str = "") -> bool:
        call.status, call.detail = status, message
        if call.outcome == "ok":
            call.outcome = "refused"
            self.job.refused.append(f"{call.method} /{call.provider}{call.path}: {message}")
        body = error_body(call.provider, status, kind, message)
        reason = REASONS.get(status, "Error")
        await self._write(writer, call, (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n{extra}"
                                         f"content-length: {len(body)}\r\n\r\n").encode() + body)
        self._record(call)
        return not call.client_gone

    def _record(self, call: GatewayCall) -> None:
        """``on_call`` off the loop (it writes the ledger row): the loop serves every job's streams.
        The job's tally first, on the loop: the agent's next call is admitted knowing this one."""
        self.job.add(call)
        self._calls.add(self._loop.run_in_executor(_BOOKS, _quietly, self.job.on_call, call))


def _quietly(callback: Callable[[GatewayCall], None], call: GatewayCall) -> None:
    with contextlib.suppress(Exception):
        callback(call)


def _presented(request: Request, query: list[tuple[str, str]]) -> str:
    """The key a request presents, wherever its provider's SDK puts it."""
    bearer = request.header("authorization") or ""
    return (request.header("x-api-key") or request.header("x-goog-api-key") or request.header("api-key")
            or (bearer[7:].strip() if bearer.lower().startswith("bearer ") else "")
            or next((v for k, v in query if k == "key"), ""))


def _requested_model(body: bytes, path: str) -> str:
    """The model a request names (its body's ``model``, Gemini's path), until the answer says."""
    if "/models/" in path:
        return path.split("/models/", 1)[1].split(":", 1)[0]
    try:
        model = json.loads(body or b"{}").get("model")
    except (ValueError, AttributeError):
        return ""
    return model if isinstance(model, str) else ""
