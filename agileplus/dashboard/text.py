"""Text from an agent or a spec, made safe to show: the characters ``core.text`` names invisible
(the one definition, shared with the CLI's ``terminal_safe``) as visible symbols (ESC as ␛), never
passed to the page as they are. HTML is escaped by Django's autoescape as usual: the result is a
plain string, never marked safe."""

from __future__ import annotations

from agileplus.core.text import INVISIBLE_CODEPOINTS


def _symbol(code: int) -> str:
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟ (␛ for ESC)
    if code == 0x7F:
        return "\u2421"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_SYMBOLS = {code: _symbol(code) for code in INVISIBLE_CODEPOINTS}


def visible(value) -> str:
    return ("" if value is None else str(value)).translate(_SYMBOLS)
