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


def counted(n: int, noun: str) -> str:
    """``1 commit``, ``2 commits``, ``0 files``: a count with its noun in the right number."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


# C0 controls but \t and \n, DEL, C1 controls (0x9b is an 8-bit CSI), and the Unicode controls that
# reorder or break what a reader sees (bidi overrides and isolates, line/paragraph separators).
INVISIBLE_CODEPOINTS = {c for c in range(0x20) if c not in (0x09, 0x0A)} | {0x7F} | set(range(0x80, 0xA0)) | {
    0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_VISIBLE = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in INVISIBLE_CODEPOINTS}


def terminal_safe(text: object) -> str:
    """``text`` with every control character a terminal would act on made visible: ESC becomes
    the four characters ``\\x1b``, so an agent's, a spec's or a user's OSC 0/8/52 (window title,
    hyperlink, clipboard), CSI (cursor, colours, erase), ``\\r`` and backspace (overwriting what
    was printed) and BEL reach the screen as text. ``\\n`` and ``\\t`` stay: they are line
    structure. Every CLI renderer prints through it (``agileplus.cli.output.echo``)."""
    return str(text).translate(_VISIBLE) if text is not None else ""
