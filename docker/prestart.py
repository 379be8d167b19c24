"""Container start-up steps, run by docker/entrypoint.sh before it execs the process.

    python docker/prestart.py --wait-db [--timeout 60] [--wait-migrations | --migrate] [--collectstatic]

``--wait-db``      retry until the configured database accepts a connection (compose's
                   ``service_healthy`` covers the first start; this covers a database that
                   restarts, or one on another machine).
``--wait-migrations`` retry until every migration is applied (a worker, beat or relay starting
                   beside compose's ``migrate`` service, or a worker on another host joining a
                   farm being upgraded, waits for the schema instead of failing and restarting).
``--migrate``      ``manage.py migrate --noinput``, serialized across containers: on
                   PostgreSQL it holds an advisory lock, so two web replicas starting at once
                   run the migrations once and the second finds nothing to do.
``--collectstatic`` ``manage.py collectstatic --noinput`` into the data volume.

Exit codes: 0 done, 3 the database stayed unreachable, 4 migrations stayed unapplied, 1 a step failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

# Any fixed 64-bit number shared by every AgilePlus container: "agileplu" in ASCII.
MIGRATE_LOCK_ID = 0x6167696C65706C75
DB_UNREACHABLE = 3
MIGRATIONS_PENDING = 4


def _setup_django() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")
    import django

    django.setup()


def _notice(message: str, level: int = logging.INFO) -> None:
    """A JSON log line where the container's lines are JSON (AGILEPLUS_LOG_FORMAT), else plain."""
    from agileplus.core.logs import notice  # after _setup_django put the app on sys.path

    notice(message, logger="agileplus.prestart", level=level)


def _describe_database() -> str:
    from django.db import connection

    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite {settings['NAME']}"
    host, port = settings.get("HOST") or "localhost", settings.get("PORT") or "default"
    return f"{connection.vendor} {host}:{port}/{settings['NAME']}"


def wait_for_database(timeout: float, interval: float = 1.0) -> bool:
    """True once a connection opens and answers ``SELECT 1``; False after ``timeout`` seconds."""
    from django.db import OperationalError, connection

    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except OperationalError as exc:
            last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            connection.close()
        if time.monotonic() >= deadline:
            _notice(f"prestart: database {_describe_database()} unreachable after {timeout:g}s: {last_error}",
                    level=logging.ERROR)
            return False
        time.sleep(interval)


def wait_for_migrations(timeout: float, interval: float = 1.0) -> bool:
    """True once the database holds every migration this image has; False after ``timeout`` seconds."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.recorder import MigrationRecorder

    deadline = time.monotonic() + timeout
    # The image's migration files are read once; each round reads only which ones are applied.
    executor = MigrationExecutor(connection)
    unapplied = {(m.app_label, m.name) for m, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())}
    recorder = MigrationRecorder(connection)
    said = False
    while True:
        pending = unapplied - set(recorder.applied_migrations())
        if not pending:
            return True
        if time.monotonic() >= deadline:
            _notice(f"prestart: {len(pending)} migration(s) still not applied after {timeout:g}s; fix: run them "
                    "once (compose's migrate service, or `agileplus init` against this database)", level=logging.ERROR)
            return False
        if not said:
            _notice(f"prestart: waiting for {len(pending)} migration(s) to be applied (compose's migrate service)")
            said = True
        time.sleep(interval)


def migrate_once() -> None:
    """Apply migrations; on PostgreSQL under an advisory lock so concurrent starts serialize."""
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        call_command("migrate", interactive=False, verbosity=1)
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK_ID])
    try:
        call_command("migrate", interactive=False, verbosity=1)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATE_LOCK_ID])


def collect_static() -> None:
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prestart", description=__doc__.splitlines()[0])
    parser.add_argument("--wait-db", action="store_true", help="wait until the database answers")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("AGILEPLUS_DB_WAIT_SECONDS", "60")))
    parser.add_argument("--wait-migrations", action="store_true", help="wait until every migration is applied")
    parser.add_argument("--migrate", action="store_true", help="apply migrations (serialized)")
    parser.add_argument("--collectstatic", action="store_true", help="collect static files")
    args = parser.parse_args(argv)

    _setup_django()
    if args.wait_db:
        if not wait_for_database(args.timeout):
            return DB_UNREACHABLE
        _notice(f"prestart: database {_describe_database()} is up")
    if args.wait_migrations and not wait_for_migrations(args.timeout):
        return MIGRATIONS_PENDING
    if args.migrate:
        migrate_once()
    if args.collectstatic:
        collect_static()
    return 0


if __name__ == "__main__":
    sys.exit(main())
