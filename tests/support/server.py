"""A real `agileplus web` (uvicorn, ASGI) on loopback, on the test's database."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.support.processes import stop_group

ROOT = Path(__file__).resolve().parents[2]
PORTS_PER_PROCESS = 1000
_next_port = itertools.count()


def free_port() -> int:
    """A port nobody listens on. Each test process of a parallel run (tests/conftest.py) takes its
    ports from a range of its own below the kernel's ephemeral range, one after the other, so two
    processes never pick the same port between choosing it and binding it; a run of one process
    lets the kernel choose."""
    base = int(os.environ.get("AGILEPLUS_TEST_PORT_BASE", "0"))
    for _ in range(PORTS_PER_PROCESS if base else 1):
        port = base + next(_next_port) % PORTS_PER_PROCESS if base else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in {base}..{base + PORTS_PER_PROCESS - 1}")


def database_url() -> str:
    """The URL of the database this test runs on, for subprocesses."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "AGILEPLUS_DATA_DIR": str(settings.DATA_DIR),
           "PYTHONPATH": str(ROOT)}
    env.update(extra)
    return env


@contextmanager
def running_web(timeout: float = 20.0, *, started: list | None = None, **env: str):
    """`agileplus web` on a free port; yields its URL (and appends its Popen to ``started``)."""
    port = free_port()
    # A file, not a pipe: nobody reads a pipe while the test runs, and a full one blocks the server.
    log = tempfile.NamedTemporaryFile(prefix="agileplus-web-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "agileplus", "web", "--port", str(port)], cwd=ROOT,
                            env=subprocess_env(**env), start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    if started is not None:
        started.append(proc)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = Path(log.name).read_text(errors="replace")
                    raise RuntimeError(f"agileplus web did not start: {out[-2000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        stop_group(proc)  # a test may have stopped it already
        log.close()
        Path(log.name).unlink(missing_ok=True)
