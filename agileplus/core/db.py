"""Small database helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def advisory_xact_lock(key: int) -> None:
    """Hold a transaction-scoped lock on PostgreSQL.

    SQLite needs nothing: its IMMEDIATE transactions already serialize writers.
    """
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def has_agileplus_tables() -> bool:
    """Whether this database was ever migrated (one cheap introspection query)."""
    # By name: core is below the apps and imports none of their modules.
    return apps.get_model("features", "Feature")._meta.db_table in connection.introspection.table_names()


def is_embedded_sqlite() -> bool:
    """The one-machine default: the SQLite file in the data folder, which nobody else migrates."""
    return connection.vendor == "sqlite" and not settings.DATABASE_URL


def migrate_database(*, verbosity: int = 0) -> None:
    """Create or update every table (Django's ``migrate``); safe to repeat."""
    call_command("migrate", interactive=False, verbosity=verbosity)
