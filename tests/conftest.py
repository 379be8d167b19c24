"""Shared test setup. The database under test is the one settings point at:
SQLite by default, PostgreSQL when ``DATABASE_URL`` is set (CI runs both)."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.support.services import require_service


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
