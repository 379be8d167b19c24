"""Adapters find their CLI on PATH: these fixtures put the stand-ins there, or nothing at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.standins import STANDINS, init_repo, path_with_standins

HARNESS_BIN_VARS = ("AGILEPLUS_CLAUDE_CODE_BIN", "AGILEPLUS_CODEX_BIN", "AGILEPLUS_GEMINI_BIN", "AGILEPLUS_AIDER_BIN",
                    "AGILEPLUS_OPENCODE_BIN")


@pytest.fixture(autouse=True)
def _no_binary_overrides(monkeypatch):
    for name in HARNESS_BIN_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def standins(monkeypatch) -> Path:
    """The stand-in CLIs first on PATH."""
    monkeypatch.setenv("PATH", path_with_standins())
    return STANDINS


@pytest.fixture
def no_binaries(monkeypatch, tmp_path) -> None:
    """A PATH on which no agent CLI can be found, and no pinned copy installed."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr("harnesses.base.PINNED_DIR", tmp_path / "no-agent-clis")


@pytest.fixture
def repo(tmp_path) -> Path:
    return init_repo(tmp_path / "repo")
