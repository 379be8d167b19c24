"""`terminal_safe`: what a terminal would act on is shown as text; line structure stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from agileplus.core.text import terminal_safe


@pytest.mark.parametrize("raw, shown", [
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),                       # OSC 0: window title
    ("\x1b]52;c;cm0gLXJm\x07", "\\x1b]52;c;cm0gLXJm\\x07"),           # OSC 52: clipboard
    ("\x1b]8;;https://x\x1b\\a\x1b]8;;\x1b\\", "\\x1b]8;;https://x\\x1b\\a\\x1b]8;;\\x1b\\"),  # OSC 8
    ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),                   # CSI: erase, colour
    ("\x9b31m", "\\x9b31m"),                                           # 8-bit CSI
    ("done\rFAKE", "done\\x0dFAKE"),                                   # carriage return overwrites
    ("bad\x08\x08\x08ok", "bad\\x08\\x08\\x08ok"),                     # backspaces overwrite
    ("abc\u202edcba", "abc\\u202edcba"),                               # bidi override reorders
])
def test_control_characters_are_made_visible(raw, shown):
    assert terminal_safe(raw) == shown


def test_newlines_tabs_and_ordinary_unicode_stay():
    text = "✓ Created src/login.rs\n\tTests passing: 3/3 — ok ░█"

    assert terminal_safe(text) == text


def test_none_is_shown_as_nothing():
    assert terminal_safe(None) == ""


def test_every_cli_module_prints_through_the_one_function():
    cli = Path(__file__).resolve().parents[2] / "agileplus" / "cli"
    printing = [p.name for p in cli.glob("*.py") if p.name != "output.py" and "click.echo(" in p.read_text()]

    assert printing == []


def test_the_dashboard_hides_the_same_characters_as_the_terminal():
    from agileplus.core.text import INVISIBLE_CODEPOINTS
    from agileplus.dashboard.text import visible

    shown = visible("".join(chr(c) for c in sorted(INVISIBLE_CODEPOINTS)))

    assert not any(ord(ch) in INVISIBLE_CODEPOINTS for ch in shown)
    assert visible("\x1b]52;c;eA==\x07") == "\u241b]52;c;eA==\u2407"
