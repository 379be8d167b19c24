"""``{{ text|visible }}``: a string from an agent, a spec file or a user with its control characters
made visible, as the CLI prints it (``agileplus.core.text.terminal_safe``). Autoescape makes text
safe for HTML, not for a terminal the page's text is copied or fetched into."""

from __future__ import annotations

from django import template

from agileplus.core.text import terminal_safe

register = template.Library()


@register.filter
def visible(value: object) -> str:
    return terminal_safe(value)
