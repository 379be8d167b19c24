"""Shared test setup. The database under test is the one settings point at:
SQLite by default, PostgreSQL when ``DATABASE_URL`` is set (CI runs both)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.support.nats_server import NatsServer
from tests.support.server import PORTS_PER_PROCESS
from tests.support.services import require_service

pytest_plugins = ["tests.support.timing"]

# Agents run sandboxed (harnesses/sandbox.py): the test agents' scripts are mounted read-only, and
# the one folder outside its repository an agent may write is the tests' outbox (AGENT_OUTBOX).
_ROOT = Path(__file__).resolve().parents[1]
AGENT_OUTBOX = Path(os.environ.setdefault("AGILEPLUS_SANDBOX_WRITABLE", f"/tmp/agileplus-agent-outbox-{os.getuid()}"))
AGENT_OUTBOX.mkdir(parents=True, exist_ok=True)
# Ports of a parallel run's test processes: below the kernel's ephemeral range (32768…), 1000 each.
PORT_RANGES_START = 20000
os.environ.setdefault("AGILEPLUS_SANDBOX_READONLY", os.pathsep.join(
    [str(_ROOT / "tests" / "support" / "agents"), str(_ROOT / "tests" / "standins")]))

# The PostgreSQL pass of ./scripts/test runs only the tests whose outcome can differ by database
# engine. A test is on it when it touches the database (``django_db``, ``db``, ``transactional_db``)
# and lies under one of these paths, or asks for ``on_postgres``, or is marked ``database`` itself.
# The paths are where the engine decides the outcome:
#  - concurrency, locking, transactions, SELECT … FOR UPDATE SKIP LOCKED: claims and leases, the farm,
#    merges, the audit chain under many writers, killed connections, the API under concurrent writes;
#  - stored JSON read back and hashed (the audit chain, events and their cursors and subject filters,
#    the API's rendering of stored rows, its query counts), and one transition's audit entry + event;
#  - what the engines store differently: NUL bytes, over-long text, out-of-range numbers, arbitrary
#    Unicode (the importer's hostile input, the API's junk input and fuzzing), sums done in SQL (costs).
# Not on it (same code and same SQL on either engine, run once on SQLite): tests that never touch the
# database (adapters, processes, sandboxes, docs, git), and surfaces over the one transition service
# whose engine-specific part is proven above (the CLI × admin transition matrix, role permissions,
# throttling, screens and forms); nor a test marked ``postgres``: it talks to the PostgreSQL server
# itself, whichever database the pass uses, so the SQLite pass runs it, once.
DATABASE_SENSITIVE_PATHS = (
    "tests/integration/core/",
    "tests/integration/events/",
    "tests/integration/scale/",
    "tests/integration/dispatch/test_claims_leases_timeouts.py",
    "tests/integration/dispatch/test_farm_end_to_end.py",
    "tests/integration/review/test_concurrent_merges.py",
    "tests/integration/api/test_api_concurrency.py",
    "tests/integration/api/test_api_endpoints.py",
    "tests/integration/api/test_api_errors.py",
    "tests/integration/api/test_api_fuzzing.py",
    "tests/integration/api/test_api_query_counts.py",
    "tests/integration/api/test_api_responses_match_schema.py",
    "tests/integration/api/test_mcp_fuzzing.py",
    "tests/faults/test_storage_and_database_faults.py",
    "tests/unit/test_api_output.py",
    "tests/unit/test_audit_tamper.py",
    "tests/unit/test_events_cli.py",
    "tests/unit/test_wp_lifecycle.py",
    "tests/unit/test_importer.py",
    "tests/unit/test_import_limits.py",
    "tests/unit/test_importer_fuzz.py",
    "tests/unit/test_feature_status.py",
    "tests/unit/test_dashboard_costs.py",
    "tests/unit/firsthour/test_board_and_costs.py",
)
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}

# The serial group: run after the parallel part, one test at a time (``-m serial``, see scripts/test):
# the tests marked ``@pytest.mark.serial``, each saying why: they need the CPU within a second or
# two (a 1 s flood, a SIGTERM-or-SIGKILL line), which a test process beside three others on 2 cores
# may not get. Not in it, since nothing of theirs is shared: the multi-host bed
# (tests/support/multihost.py: each test process's bed has namespaces named after its pid, its own
# PostgreSQL cluster, Redis and NATS inside them, a private /tmp per host) and the docker test (it
# starts no container; its servers take ports from free_port()).


def database_sensitive(item: pytest.Item) -> bool:
    path = item.nodeid.split("::", 1)[0]
    touches_database = bool(item.get_closest_marker("django_db")) or bool(DATABASE_FIXTURES & set(item.fixturenames))
    return ((path.startswith(DATABASE_SENSITIVE_PATHS) and touches_database) or "on_postgres" in item.fixturenames
            or bool(item.get_closest_marker("database")))


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if database_sensitive(item):
            item.add_marker(pytest.mark.database)


# A parallel run (pytest-xdist, ``-n N``): each test process gets, before Django's settings load, a
# data folder (so its SQLite database, embedded broker, worker folders), an agent outbox, a Redis key
# prefix (every Celery queue and channel of the workers it starts) and a port range of its own; its
# PostgreSQL test database is pytest-django's (``test_…_gw0``). NATS tests start a nats-server each
# (the ``nats_url`` fixture, tests/support/nats_server.py). So ``-n 4`` runs as four separate runs.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs) -> None:
    from django.conf import settings

    run = os.getpid()
    for index, spec in enumerate(specs):
        spec.env.update({
            "AGILEPLUS_DATA_DIR": str(Path(settings.DATA_DIR) / f"xdist-{index}"),
            "AGILEPLUS_SANDBOX_WRITABLE": str(AGENT_OUTBOX / f"xdist-{index}"),
            "AGILEPLUS_REDIS_KEY_PREFIX": f"test{run}-{index}:",
            "AGILEPLUS_TEST_PORT_BASE": str(PORT_RANGES_START + index * PORTS_PER_PROCESS),
        })


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
def nats_url(tmp_path) -> Iterator[str]:
    """A NATS server with JetStream of this test's own (nothing another test or test process
    publishes reaches it)."""
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
