"""The real agent CLIs pinned in tools/agent-clis, for integration tests: found (or the test
fails in CI and is skipped elsewhere, like a missing service), and the worker environment
that points one at a scripted endpoint (its credentials, as a worker holds them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harnesses.check import endpoint_environment, pinned_binaries, prepare_home
from harnesses.endpoints import ScriptedEndpoint
from tests.support.services import in_ci


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
    return {f"AGILEPLUS_{harness.upper().replace('-', '_')}_BIN": require_cli(harness), "HOME": str(home),
            **endpoint_environment(harness, endpoint)}
