"""`agileplus relay`: the outbox → NATS JetStream publisher."""

from __future__ import annotations

import asyncio

import click
from django.conf import settings

from agileplus.cli.context import actor_option, current_actor
from agileplus.cli.main import cli
from agileplus.cli.output import echo
from agileplus.core.errors import DomainError
from agileplus.events.relay import relay_lock, run_relay


@cli.command()
@click.option("--url", default=None, help="NATS server (default: $NATS_URL)")
@click.option("--once", is_flag=True, help="Publish what is waiting, then exit")
@click.option("--batch", default=200, type=click.IntRange(1, 10000), show_default=True)
@click.option("--wait", "wait_seconds", type=click.FloatRange(0), default=None,
              help="With --once: seconds to wait for a running relay to stop (default 0: say so and exit)")
def relay(url: str | None, once: bool, batch: int, wait_seconds: float | None) -> None:
    """Publish outbox events to NATS JetStream, each once, in order."""

    url = url or settings.NATS_URL
    if not url:
        raise DomainError("no NATS server configured", field="NATS_URL",
                          fix="set NATS_URL=nats://host:4222 (without NATS, the dashboard reads the outbox directly)")
    # One relay publishes at a time (order). A standing relay waits to take over; `--once` is
    # a one-off, so it says another relay is running and exits rather than hang.
    bound = (wait_seconds or 0) if once else None
    waiting = (f"waiting up to {bound:g}s for it to stop" if bound else "waiting to take over when it stops")
    with relay_lock(wait_seconds=bound, on_wait=None if bound == 0 else lambda: echo(
            f"another relay is running: {waiting}", err=True)):
        published = asyncio.run(run_relay(url, batch=batch, once=once))
    if once:
        echo(f"published {published} events")


@cli.command("mcp")
@click.option("--http", "over_http", is_flag=True, help="Serve streamable HTTP instead of stdio")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, type=click.IntRange(1, 65535), show_default=True)
@actor_option
def mcp_command(over_http: bool, host: str, port: int, actor: str | None) -> None:
    """Serve the MCP tools (features, WPs, logs, dispatch, transitions, audit) to an agent or IDE."""
    from agileplus import mcp_server  # late: the MCP SDK only for `agileplus mcp`

    if not over_http:
        mcp_server.run_stdio(current_actor(actor))
        return
    import uvicorn

    echo(f"MCP over streamable HTTP at http://{host}:{port}/mcp (Authorization: Token <key>)", err=True)
    # X-Forwarded-For only through AGILEPLUS_API_TRUSTED_PROXIES, as for `agileplus web`.
    uvicorn.run(mcp_server.http_app(), host=host, port=port, log_level="warning", proxy_headers=False)
