"""``visible``: control characters in text from an agent or a spec shown as symbols (ESC as ␛),
never passed to the page as they are. HTML is escaped by Django's autoescape as usual: the result
is a plain string, not marked safe."""

from __future__ import annotations

import json
import re

from django import template

register = template.Library()

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _symbol(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟ (␛ for ESC)
    return "␡" if code == 0x7F else f"\\x{code:02x}"


@register.filter
def visible(value) -> str:
    return _CONTROL.sub(_symbol, "" if value is None else str(value))


@register.filter
def json_body(value) -> str:
    """An action's request body for a ``data-`` attribute (autoescape quotes it)."""
    return json.dumps(value, sort_keys=True)
