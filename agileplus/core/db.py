"""Small database helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

import os

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
    from agileplus.features.models import Feature

    return Feature._meta.db_table in connection.introspection.table_names()


def is_embedded_sqlite() -> bool:
    """The one-machine default: the SQLite file in the data folder, which nobody else migrates."""
    return connection.vendor == "sqlite" and not os.environ.get("DATABASE_URL")


def migrate_database(*, verbosity: int = 0) -> None:
    """Create or update every table (Django's ``migrate``); safe to repeat."""
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=verbosity)
