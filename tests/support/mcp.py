"""The MCP server over streamable HTTP in a real process, driven by the `mcp` package's client."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable

import anyio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from tests.support.server import ROOT, free_port, subprocess_env


def mcp_http_session(token: str, calls: Callable[[ClientSession], Awaitable]):
    """Start `agileplus mcp --http`, wait until it refuses an anonymous caller, run ``calls`` in a
    session authenticated by ``token``, stop the server; returns what ``calls`` returned."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "agileplus", "mcp", "--http", "--port", str(port)], cwd=ROOT,
                              env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b"{}"), timeout=1)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401  # up, and refusing an anonymous caller
                break
            except OSError:
                assert time.monotonic() < deadline, server.stderr.read().decode()
                time.sleep(0.2)

        async def run():
            client = create_mcp_http_client(headers={"Authorization": f"Token {token}"})
            async with streamable_http_client(url, http_client=client) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                return await calls(session)

        return anyio.run(run)
    finally:
        server.terminate()
        server.wait(timeout=10)
