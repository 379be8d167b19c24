"""Small database helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

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
