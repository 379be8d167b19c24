"""The MCP server: an agent or an IDE drives the farm through the same services as the CLI
and the REST API, with the caller's actor deciding what it may do (an agent cannot approve
or move work to done; the services enforce it).

Transports: stdio (`agileplus mcp --actor human:alice`, the caller is local, like the CLI) and
streamable HTTP (`agileplus mcp --http --port 8765`, every request authenticated by an
``Authorization: Token <key>`` whose user decides the actor).
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

import anyio
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.responses import JSONResponse

from agileplus.api.auth import user_for_token_header
from agileplus.api.output import MovedOut
from agileplus.api.roles import Caller, caller_for_actor, caller_for_user, ensure_may, ensure_owns_wp
from agileplus.api.throttles import auth_wait, retry_after, write_wait
from agileplus.audit.chain import verify_chain
from agileplus.core.actors import Actor
from agileplus.core.errors import DomainError
from agileplus.dispatch import selectors, services
from agileplus.dispatch.fresh import start_fresh
from agileplus.features import selectors as feature_selectors
from agileplus.features.services import get_feature, get_wp
from agileplus.review.models import ReviewRequest
from agileplus.review.requests import move_or_queue, request_as_dict

log = logging.getLogger("agileplus.mcp")
_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("agileplus_mcp_caller", default=None)


def _run(fn: Callable[[], Any]):
    """Call a service off the event loop; a domain error becomes a tool error naming the fix."""

    def guarded():
        try:
            return fn()
        except DomainError as exc:
            fix = f" Fix: {exc.fix}" if getattr(exc, "fix", None) else ""
            raise ToolError(f"{exc}{fix}") from None
        except Exception:  # a bug: logged here, one plain sentence to the caller (the fuzz test looks for it)
            log.exception("MCP tool failed")
            raise ToolError("internal error: the server could not complete this call; it has been logged") from None
    return sync_to_async(guarded, thread_sensitive=True)()


def _text_arguments(tool: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse a NUL character in any text argument, naming it: PostgreSQL cannot store or compare
    one, and every tool's text reaches a query."""

    @functools.wraps(tool)  # the tool's signature (its input schema) is read through __wrapped__
    async def checked(*args: Any, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            if isinstance(value, str) and "\x00" in value:
                raise ToolError(f"{name}: contains a NUL character. Fix: send plain text")
        return await tool(*args, **kwargs)
    return checked


def build_server(default_actor: Actor | None = None) -> MCPServer:
    server = MCPServer(name="agileplus", version="1.0",
                       instructions="Features, work packages, agent jobs and the audit chain of an AgilePlus farm.")

    def caller() -> Caller:
        """The caller, checked by the same permission functions as the REST API (agileplus.api.roles)."""
        found = _caller.get() or (caller_for_actor(default_actor) if default_actor else None)
        if found is None:
            raise ToolError("not authenticated: send `Authorization: Token <key>`")
        return found

    _add_read_tools(server)
    _add_write_tools(server, caller)
    return server


def _add_read_tools(server: MCPServer) -> None:
    @server.tool(description="List features with their WP counts and state.")
    @_text_arguments
    async def list_features() -> dict:
        return {"features": await _run(lambda: feature_selectors.features_overview())}

    @server.tool(description="A feature's status: WPs (one page of up to 200), states, progress, estimated "
                             "completion.")
    @_text_arguments
    async def feature_status(feature: str, after: str = "", limit: int = 200) -> dict:
        return await _run(lambda: feature_selectors.feature_status(get_feature(feature), after=after[:20],
                                                                   limit=max(1, min(limit, 1000))))

    @server.tool(description="The work packages of a feature with their dependencies and readiness (a page of "
                             "up to `limit`, after the code `after`).")
    @_text_arguments
    async def list_wps(feature: str, after: str = "", limit: int = 200) -> dict:
        def page():
            found = feature_selectors.feature_status(get_feature(feature), after=after[:20],
                                                     limit=max(1, min(limit, 1000)))
            return {"work_packages": found["work_packages"], "next_after": found["work_packages_page"]["next_after"]}
        return await _run(page)

    @server.tool(description="The last lines of the agent log of a WP's latest job.")
    @_text_arguments
    async def wp_log(feature: str, wp: str, tail: int = 50) -> dict:
        def lines():
            job = selectors.latest_job(get_wp(get_feature(feature), wp))
            if job is None:
                return []
            rows = selectors.log_lines(job, tail=max(1, min(tail, 2000)))
            return [f"[{r.timestamp:%H:%M:%S}] {r.line}" for r in rows]
        return {"lines": await _run(lines)}

    @server.tool(description="Recompute a feature's audit chain; names any changed, deleted or reordered entry.")
    @_text_arguments
    async def verify_audit(feature: str) -> dict:
        return await _run(lambda: verify_chain(get_feature(feature)).as_dict())


def _add_write_tools(server: MCPServer, caller: Callable[[], Actor]) -> None:
    """Tools that change the farm: the caller's actor decides (the services refuse the rest)."""

    @server.tool(description="Dispatch a ready WP to an agent harness; returns the job. fresh=true "
                             "(`implement --fresh`) starts the WP over from the current main on a new branch, "
                             "keeping its old branch on the origin under salvage/ (fresh_start says where).")
    @_text_arguments
    async def dispatch(feature: str, wp: str, agent: str | None = None, fresh: bool = False) -> dict:
        who = caller()

        def enqueue():
            ensure_may(who, "implement")
            target = get_wp(get_feature(feature), wp)
            if fresh:
                started = start_fresh(target, harness=agent, actor=who.actor)
                return {**selectors.job_summary(started.job), "fresh_start": started.move.as_dict()}
            return selectors.job_summary(services.enqueue_job(target, harness=agent, actor=who.actor))
        return await _run(enqueue)

    @server.tool(description="Move a WP to another state (to done merges it; only humans and CI may).")
    @_text_arguments
    async def transition(feature: str, wp: str, to: str) -> dict:
        who = caller()

        def move():
            ensure_may(who, "transition")
            target = get_wp(get_feature(feature), wp)
            ensure_owns_wp(who, target)
            result = move_or_queue(target, to, actor=who.actor)
            if isinstance(result, ReviewRequest):  # through the merge queue: its checks run on a review worker
                return request_as_dict(result)
            return dict(MovedOut(result).data)
        return await _run(move)


def run_stdio(actor: Actor) -> None:
    anyio.run(build_server(actor).run_stdio_async)


def http_app(*, path: str = "/mcp"):
    """The streamable HTTP app, wrapped so every request carries a valid token, under the REST
    API's throttles (``agileplus.api.throttles``): a bad token counts against the address's
    ``auth`` budget (past it: 429, not 401), each call of a write tool against the user's
    ``write`` budget; 429 with ``Retry-After``."""
    inner = build_server().streamable_http_app(streamable_http_path=path, stateless_http=True)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        user = await sync_to_async(user_for_token_header)(auth)
        if user is None:
            wait = await sync_to_async(auth_wait)(_throttle_request(scope, headers)) if auth else None
            response = (_throttled(wait, "too many bad tokens from your address") if wait is not None else
                        JSONResponse({"error": {"code": "not_authenticated", "field": "Authorization",
                                                "message": "send `Authorization: Token <key>`"}}, status_code=401))
            return await response(scope, receive, send)
        body, receive = await _read_body(receive)
        for _ in range(_write_calls(body)):
            wait = await sync_to_async(write_wait)(_throttle_request(scope, headers, user))
            if wait is not None:
                return await _throttled(wait, "too many writes")(scope, receive, send)
        reset = _caller.set(await sync_to_async(caller_for_user)(user))
        try:
            return await inner(scope, receive, send)
        finally:
            _caller.reset(reset)
    return app


WRITE_TOOLS = frozenset({"dispatch", "transition"})  # the tools of _add_write_tools


def _throttle_request(scope: dict, headers: dict[str, str], user=None) -> HttpRequest:
    """What the REST throttles read of a request (method, peer address, X-Forwarded-For, user)."""
    request = HttpRequest()
    request.method = scope.get("method", "POST")
    request.META = {"REMOTE_ADDR": (scope.get("client") or ("",))[0]}
    if "x-forwarded-for" in headers:
        request.META["HTTP_X_FORWARDED_FOR"] = headers["x-forwarded-for"]
    request.user = user or AnonymousUser()
    return request


def _throttled(wait: float, what: str) -> JSONResponse:
    seconds = retry_after(wait)
    return JSONResponse({"error": {"code": "throttled", "message": f"{what}: retry in {seconds}s",
                                   "fix": f"retry in {seconds}s"}}, status_code=429,
                        headers={"Retry-After": str(seconds)})


async def _read_body(receive) -> tuple[bytes, Callable]:
    """The request's body (read to decide on the write budget), and a ``receive`` that hands it
    to the MCP app as if unread."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body, replayed = b"".join(chunks), False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}
    return body, replay


def _write_calls(body: bytes) -> int:
    """How many calls of a write tool a JSON-RPC body carries (one message or a batch)."""
    try:
        data = json.loads(body)
    except ValueError:
        return 0
    return sum(1 for m in (data if isinstance(data, list) else [data])
               if isinstance(m, dict) and m.get("method") == "tools/call" and isinstance(m.get("params"), dict)
               and m["params"].get("name") in WRITE_TOOLS)
