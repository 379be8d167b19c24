"""Text from an agent or a spec, made safe to show: control characters as visible symbols (ESC
as ␛), never passed to the page as they are. HTML is escaped by Django's autoescape as usual: the
result is a plain string, never marked safe."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _symbol(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟ (␛ for ESC)
    return "␡" if code == 0x7F else f"\\x{code:02x}"


def visible(value) -> str:
    return _CONTROL.sub(_symbol, "" if value is None else str(value))
