"""The real agent CLIs pinned in tools/agent-clis, for integration tests: found (or the test
fails in CI and is skipped elsewhere, like a missing service), and the worker environment
that points one at a scripted endpoint (its credentials, as a worker holds them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harnesses.check import endpoint_environment, pinned_binaries, prepare_home
from harnesses.endpoints import ScriptedEndpoint
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
