"""The agent CLIs `scripts/install-agent-clis` pins in tools/agent-clis are used where they are
installed, with no PATH entry or variable: by the adapters, so by `agents list` and by a plain
`agents check` (not only `--pinned`). A CLI on PATH comes first; a variable naming a binary that
is not there is an error, never quietly replaced by the pinned copy."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from harnesses.adapters.claude_code import ClaudeCodeAdapter
from harnesses.base import HarnessError
from harnesses.check import check_harnesses
from tests.support.cli import run_cli
from tests.support.standins import STANDINS, run_spec

STANDIN_VERSION = "2.0.37 (Claude Code)"


@pytest.fixture
def pinned(monkeypatch, tmp_path) -> str:
    """A tools/agent-clis whose Claude Code is the stand-in (run by this Python: PATH may be empty)."""
    root = tmp_path / "agent-clis"
    (root / "node_modules" / ".bin").mkdir(parents=True)
    claude = root / "node_modules" / ".bin" / "claude"
    claude.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDINS}/claude" "$@"\n')
    claude.chmod(0o755)
    monkeypatch.setattr("harnesses.base.PINNED_DIR", root)
    return str(claude)


@pytest.fixture
def system_path(monkeypatch) -> None:
    """PATH with the system's tools (git) and no agent CLI."""
    monkeypatch.setenv("PATH", str(Path(shutil.which("git")).parent))
    assert shutil.which("claude") is None and shutil.which("codex") is None


def test_a_cli_on_no_path_is_found_in_its_pinned_install(no_binaries, pinned):
    found = ClaudeCodeAdapter().availability()

    assert (found.available, found.path, found.version) == (True, pinned, STANDIN_VERSION)


def test_a_cli_on_path_comes_before_the_pinned_copy(pinned, standins):
    found = ClaudeCodeAdapter().availability()

    assert Path(found.path).parent == STANDINS


def test_a_variable_naming_a_missing_binary_is_an_error_that_points_at_the_pinned_copy(
        no_binaries, pinned, monkeypatch, tmp_path):
    monkeypatch.setenv("AGILEPLUS_CLAUDE_CODE_BIN", str(tmp_path / "no-claude"))

    with pytest.raises(HarnessError) as error:
        ClaudeCodeAdapter().build_command(run_spec(tmp_path))

    assert f"the pinned CLI is installed at {pinned}: unset AGILEPLUS_CLAUDE_CODE_BIN to use it" in str(error.value)


def test_a_missing_cli_without_a_pinned_copy_names_the_installer_script(no_binaries):
    reason = ClaudeCodeAdapter().availability().reason

    assert "install the pinned version with ./scripts/install-agent-clis (then found without PATH" in reason


def test_a_plain_agents_check_runs_the_pinned_cli(pinned, system_path):
    [result] = check_harnesses(["claude-code"])

    assert (result.found, result.path, result.version) == (True, pinned, STANDIN_VERSION)


@pytest.mark.django_db
def test_agents_list_shows_the_pinned_cli_available(no_binaries, pinned, monkeypatch):
    monkeypatch.setenv("AGILEPLUS_SANDBOX", "off")

    rows = {row["name"]: row for row in json.loads(run_cli("agents list --json").output)}

    assert rows["claude-code"]["status"] == "available" and rows["claude-code"]["version"] == STANDIN_VERSION
    assert rows["codex"]["status"] == "unavailable"
