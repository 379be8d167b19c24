"""Template filters for text from agents and specs (``text.visible``) and action bodies."""

from __future__ import annotations

import json

from django import template

from agileplus.dashboard import text

register = template.Library()
register.filter("visible", text.visible)


@register.filter
def json_body(value) -> str:
    """An action's request body for a ``data-`` attribute (autoescape quotes it)."""
    return json.dumps(value, sort_keys=True)
