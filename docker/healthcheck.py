"""Container health checks, one per AgilePlus process: ``python docker/healthcheck.py ROLE``.

web      GET http://127.0.0.1:$AGILEPLUS_PORT/api/health answers 200 (the view runs SELECT 1)
flower   GET http://127.0.0.1:$FLOWER_PORT/healthcheck answers 200 (Flower serves it without auth)
worker   the agent sandbox can be made here (sandbox below), and this container's Celery node
         (worker@$HOSTNAME) answers a ping through the broker
sandbox  bubblewrap makes the agents' sandbox in this container (the worker's own probe), or
         AGILEPLUS_SANDBOX=off says agents run unsandboxed on purpose
beat     an ``agileplus beat`` process is running and the broker accepts connections
relay    an ``agileplus relay`` process is running and the database and NATS accept connections

Exit 0 healthy, 1 unhealthy (with one line on stderr saying why), as Docker expects.
Only the standard library is used, except for the worker's ping, which needs Celery anyway.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "redis": 6379, "rediss": 6379, "nats": 4222, "amqp": 5672}


class Unhealthy(Exception):
    pass


def check_http(url: str, timeout: float = 4.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                raise Unhealthy(f"{url} answered {response.status}")
    except urllib.error.HTTPError as exc:
        raise Unhealthy(f"{url} answered {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise Unhealthy(f"{url} unreachable: {getattr(exc, 'reason', exc)}") from exc


def check_tcp(url: str, timeout: float = 3.0) -> None:
    """The service named by ``url`` (postgres://, redis://, nats://, ...) accepts a TCP connection."""
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or DEFAULT_PORTS.get(parsed.scheme, 0)
    if not port:
        raise Unhealthy(f"cannot tell the port of {parsed.scheme}://{host}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise Unhealthy(f"{parsed.scheme}://{host}:{port} unreachable: {exc}") from exc


def process_running(*words: str, proc: Path = Path("/proc")) -> bool:
    """True if some process's command line contains ``words`` as consecutive arguments."""
    wanted = list(words)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for i in range(len(argv) - len(wanted) + 1):
            if Path(argv[i]).name == wanted[0] and argv[i + 1 : i + len(wanted)] == wanted[1:]:
                return True
    return False


def check_process(*words: str) -> None:
    if not process_running(*words):
        raise Unhealthy(f"no `{' '.join(words)}` process is running")


def check_worker(node: str, timeout: float = 5.0) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")
    try:
        from workers.celery import app
    except ImportError as exc:
        raise Unhealthy(f"cannot import the Celery app workers.celery: {exc}") from exc

    replies = app.control.ping(destination=[node], timeout=timeout)
    if not any(node in reply for reply in replies):
        raise Unhealthy(f"celery node {node} did not answer a ping within {timeout:g}s")


SANDBOX_FIX = ("run the worker with docker/compose.yaml's settings: security_opt "
               "seccomp=docker/seccomp-bwrap.json and systempaths=unconfined (and apparmor=unconfined "
               "on an AppArmor host such as Ubuntu); see docs/operations.md")


def check_sandbox() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from harnesses.base import HarnessError
    from harnesses.sandbox import sandbox_mode

    try:
        sandbox_mode()
    except HarnessError as exc:
        reason = str(exc).split("; agents", 1)[0]
        raise Unhealthy(f"agents cannot be sandboxed in this container ({reason}); fix: {SANDBOX_FIX}") from exc


def _env_url(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise Unhealthy(f"{name} is not set")
    return value


def run(role: str) -> None:
    if role == "web":
        check_http(f"http://127.0.0.1:{os.environ.get('AGILEPLUS_PORT', '8000')}/api/health")
    elif role == "flower":
        check_http(f"http://127.0.0.1:{os.environ.get('FLOWER_PORT', '5555')}/healthcheck")
    elif role == "sandbox":
        check_sandbox()
    elif role == "worker":
        check_sandbox()
        check_worker(os.environ.get("AGILEPLUS_WORKER_NODE") or f"worker@{socket.gethostname()}")
    elif role == "beat":
        check_process("agileplus", "beat")
        check_tcp(_env_url("CELERY_BROKER_URL"))
    elif role == "relay":
        check_process("agileplus", "relay")
        check_tcp(_env_url("DATABASE_URL"))
        check_tcp(_env_url("NATS_URL"))
    else:
        raise Unhealthy(f"unknown role {role!r}: web, flower, worker, sandbox, beat or relay")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: healthcheck.py web|flower|worker|sandbox|beat|relay", file=sys.stderr)
        return 2
    try:
        run(args[0])
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
