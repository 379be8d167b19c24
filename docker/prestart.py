"""Container start-up steps, run by docker/entrypoint.sh before it execs the process.

    python docker/prestart.py --wait-db [--timeout 60] [--migrate] [--collectstatic]

``--wait-db``      retry until the configured database accepts a connection (compose's
                   ``service_healthy`` covers the first start; this covers a database that
                   restarts, or one on another machine).
``--migrate``      ``manage.py migrate --noinput``, serialized across containers: on
                   PostgreSQL it holds an advisory lock, so two web replicas starting at once
                   run the migrations once and the second finds nothing to do.
``--collectstatic`` ``manage.py collectstatic --noinput`` into the data volume.

Exit codes: 0 done, 3 the database stayed unreachable, 1 a step failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Any fixed 64-bit number shared by every AgilePlus container: "agileplu" in ASCII.
MIGRATE_LOCK_ID = 0x6167696C65706C75
DB_UNREACHABLE = 3


def _setup_django() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")
    import django

    django.setup()


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
            print(f"prestart: database {_describe_database()} unreachable after {timeout:g}s: {last_error}",
                  file=sys.stderr)
            return False
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
    parser.add_argument("--migrate", action="store_true", help="apply migrations (serialized)")
    parser.add_argument("--collectstatic", action="store_true", help="collect static files")
    args = parser.parse_args(argv)

    _setup_django()
    if args.wait_db:
        if not wait_for_database(args.timeout):
            return DB_UNREACHABLE
        print(f"prestart: database {_describe_database()} is up", file=sys.stderr)
    if args.migrate:
        migrate_once()
    if args.collectstatic:
        collect_static()
    return 0


if __name__ == "__main__":
    sys.exit(main())
