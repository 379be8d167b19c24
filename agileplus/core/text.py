"""Untrusted text (agent output, commit messages, file names) made storable on every database.

PostgreSQL refuses NUL in text and in jsonb strings (``DataError``); SQLite stores it. Agent
output is untrusted bytes, so whatever reaches a text or JSON column goes through here first:
NUL becomes U+FFFD (visible, never silently dropped) and long lines are cut.
"""

from __future__ import annotations

from typing import Any

NUL_REPLACEMENT = "\ufffd"
MAX_LINE_CHARS = 8000


def storable_text(text: str | None, limit: int = MAX_LINE_CHARS) -> str:
    """``text`` without NUL characters, cut to ``limit`` characters."""
    if not text:
        return ""
    return text.replace("\x00", NUL_REPLACEMENT)[:limit]


def storable_json(value: Any) -> Any:
    """The same JSON value with NUL removed from every string (keys included)."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {storable_json(k): storable_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_json(v) for v in value]
    return value
