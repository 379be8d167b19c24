"""Everything the farm's database holds, as text: every row of every table, every column."""

from __future__ import annotations

from django.db import connection


def every_stored_text() -> str:
    """One line per row of every table (Django's own included), so a search of it is a search of
    the whole database, whatever model or column a value went into."""
    rows: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (names from the schema)
            rows += [f"{table}: {row!r}" for row in cursor.fetchall()]
    return "\n".join(rows)
