"""Shared test setup. The database under test is the one settings point at:
SQLite by default, PostgreSQL when ``DATABASE_URL`` is set (CI runs both)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection

from tests.support.services import require_service

# Agents run sandboxed (harnesses/sandbox.py): the test agents' scripts are mounted read-only, and
# the one folder outside its repository an agent may write is the tests' outbox (AGENT_OUTBOX).
_ROOT = Path(__file__).resolve().parents[1]
AGENT_OUTBOX = Path(os.environ.setdefault("AGILEPLUS_SANDBOX_WRITABLE", f"/tmp/agileplus-agent-outbox-{os.getuid()}"))
AGENT_OUTBOX.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("AGILEPLUS_SANDBOX_READONLY", os.pathsep.join(
    [str(_ROOT / "tests" / "support" / "agents"), str(_ROOT / "tests" / "standins")]))


@pytest.fixture
def on_postgres(transactional_db):
    """Skip (or fail in CI) unless this run's database is PostgreSQL."""
    if connection.vendor != "postgresql":
        require_service("postgres")
        pytest.skip("this run uses SQLite; the PostgreSQL run (DATABASE_URL=postgres://…) covers this test")
    return connection


@pytest.fixture
def redis_url() -> str:
    return require_service("redis")


@pytest.fixture
def nats_url() -> str:
    return require_service("nats")
