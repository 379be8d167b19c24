"""Shared test setup. The database under test is the one settings point at:
SQLite by default, PostgreSQL when ``DATABASE_URL`` is set (CI runs both)."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.support.services import require_service

# The PostgreSQL pass of ./scripts/test runs only the tests where the database engine changes the
# outcome (locking, transactions, concurrency, vendor types): every test under these paths, every test
# that asks for ``on_postgres`` or is marked ``postgres``, and any test marked ``database`` explicitly.
# The rest (git, processes, CLIs, browsers) behaves the same on either engine and runs once, on SQLite.
DATABASE_SENSITIVE_PATHS = (
    "tests/unit/",
    "tests/integration/core/",
    "tests/integration/api/",
    "tests/integration/events/",
    "tests/integration/scale/",
    "tests/integration/dispatch/test_claims_leases_timeouts.py",
    "tests/integration/dispatch/test_farm_end_to_end.py",
    "tests/integration/review/test_concurrent_merges.py",
    "tests/faults/test_storage_and_database_faults.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if (path.startswith(DATABASE_SENSITIVE_PATHS) or "on_postgres" in item.fixturenames
                or item.get_closest_marker("postgres")):
            item.add_marker(pytest.mark.database)


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
