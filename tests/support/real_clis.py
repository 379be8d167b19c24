"""The real agent CLIs pinned in tools/agent-clis, for integration tests: found (or the test
fails in CI and is skipped elsewhere, like a missing service), and the worker environment
that points one at a scripted endpoint (its credentials, as a worker holds them)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from agileplus.dispatch.models import DispatchJob
from agileplus.features.models import Feature
from harnesses.check import endpoint_environment, pinned_binaries, prepare_home
from harnesses.endpoints import ScriptedEndpoint, Turn
from harnesses.process import all_marked
from tests.support.services import in_ci
from tests.support.tls import shared_test_ca


def require_cli(harness: str) -> str:
    """The pinned CLI's path, or fail (CI) / skip (elsewhere) saying how to install it."""
    found = pinned_binaries().get(harness)
    if found:
        return found
    reason = f"the pinned {harness} CLI is not installed: run `npm ci` in tools/agent-clis (scripts/test does)"
    if in_ci():
        pytest.fail(f"CI needs {reason}")
    pytest.skip(reason)


def worker_environment(harness: str, endpoint: ScriptedEndpoint, home: Path) -> dict[str, str]:
    """What a worker process needs to run ``harness`` against ``endpoint``: the pinned binary
    (``AGILEPLUS_<HARNESS>_BIN``), the endpoint and key, and a HOME of its own (the CLIs write
    their sessions and settings there; no git identity: the worker gives the agent one)."""
    prepare_home(harness, home)
    # an endpoint served over TLS: the worker's gateway verifies it with the test's CA
    tls = {"AGILEPLUS_MODEL_GATEWAY_CA_FILE": str(shared_test_ca().ca_file)} if endpoint.tls else {}
    return {f"AGILEPLUS_{harness.upper().replace('-', '_')}_BIN": require_cli(harness), "HOME": str(home),
            **endpoint_environment(harness, endpoint), **tls}


def over_tls(endpoint: ScriptedEndpoint) -> ScriptedEndpoint:
    """``endpoint`` served over HTTPS with the test CA's certificate (the provider as the gateway meets it)."""
    return endpoint.serve_tls(shared_test_ca().server_context())


def hold_delayed_replies(endpoint: ScriptedEndpoint) -> threading.Event:
    """Before its first request: ``endpoint``'s delayed replies wait for the returned event (their
    delay is then the deadline)."""
    release = threading.Event()
    endpoint.script = [dataclasses.replace(step, released=release) if isinstance(step, Turn) and step.delay
                       else step for step in endpoint.script]
    return release


@contextmanager
def released_once_the_agent_is_gone(release: threading.Event, feature: Feature, attempt: int = 1,
                                    timeout: float = 300) -> Iterator[None]:
    """Set ``release`` once the agent of ``feature``'s job (that attempt) has run and no process
    carries its job mark any more: a reply held for an agent the timeout kills is then sent at
    once, and the worker's gateway, which reads a killed agent's call to its end to bill it,
    stops waiting (rather than for the rest of a fixed delay)."""
    stop = threading.Event()

    def watch() -> None:
        deadline, seen, job_id = time.monotonic() + timeout, False, None
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                job_id = job_id or DispatchJob.objects.filter(feature=feature).values_list("id", flat=True).first()
                if job_id:
                    alive = any(mark.endswith(f":{job_id}.{attempt}") for mark in all_marked().values())
                    if seen and not alive:
                        release.set()
                        return
                    seen = seen or alive
                stop.wait(0.2)
        finally:
            connection.close()  # this thread's own

    watcher = threading.Thread(target=watch, daemon=True, name="agent-gone")
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=10)
