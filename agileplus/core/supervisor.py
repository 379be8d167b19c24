"""`agileplus up`: the farm's processes on one machine, started together and stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command


def _agileplus(*args: str) -> list[str]:
    return [sys.executable, "-m", "agileplus", *args]


def farm_commands(*, port: int, concurrency: int) -> dict[str, list[str]]:
    commands = {
        "web": _agileplus("web", "--port", str(port)),
        "worker": _agileplus("worker", "--concurrency", str(concurrency)),
        "beat": _agileplus("beat"),
    }
    if settings.NATS_URL:
        commands["relay"] = _agileplus("relay")
    return commands


def run_farm(*, port: int, concurrency: int) -> int:
    call_command("migrate", interactive=False, verbosity=0)
    logs = settings.DATA_DIR / "logs"
    logs.mkdir(exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    for name, argv in farm_commands(port=port, concurrency=concurrency).items():
        out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                       env={**os.environ})
        print(f"started {name} (pid {procs[name].pid}); log: {logs / f'{name}.log'}", flush=True)
    print(f"Dashboard: http://127.0.0.1:{port}/   API: http://127.0.0.1:{port}/api/docs/", flush=True)
    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping the farm (see {logs / f'{name}.log'})",
                      flush=True)
                stopping, code = True, 1
                break
        time.sleep(0.5)
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return code
