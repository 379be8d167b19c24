"""Text from agents and specs on the dashboard: control characters shown, never passed through."""

from __future__ import annotations

from agileplus.dashboard.text import visible


def test_control_characters_become_visible_symbols_and_tabs_newlines_and_markup_stay():
    assert visible("a\x1b[31mb\x00c\x7fd\x9be\tf\ng<i>") == "a\u241b[31mb\u2400c\u2421d\\x9be\tf\ng<i>"


def test_nothing_is_an_empty_string():
    assert visible(None) == ""
