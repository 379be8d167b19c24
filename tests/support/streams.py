"""Streams recorded from the real agent CLIs by ``scripts/record-agent-streams`` (the pinned
versions in tools/agent-clis), for the adapter unit tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

STREAMS = Path(__file__).resolve().parents[1] / "fixtures" / "streams"
PACKAGES = {"claude-code": "@anthropic-ai/claude-code", "codex": "@openai/codex", "gemini": "@google/gemini-cli",
            "opencode": "opencode-linux-x64", "aider": "aider-chat"}


def pinned_version(harness: str) -> str:
    if harness == "aider":
        pins = (STREAMS.parents[2] / "tools" / "agent-clis" / "aider-requirements.txt").read_text().splitlines()
        return next(line.split("==")[1] for line in pins if line.startswith("aider-chat=="))
    package = json.loads((STREAMS.parents[2] / "tools" / "agent-clis" / "package.json").read_text())
    return {**package["dependencies"], **package.get("optionalDependencies", {})}[PACKAGES[harness]]


@dataclass
class Recorded:
    header: dict
    lines: list[str]

    def of_type(self, kind: str, **fields) -> list[str]:
        """The lines whose JSON ``type`` is ``kind`` (and whose top-level fields match)."""
        found = []
        for line in self.lines:
            obj = json.loads(line) if line.startswith("{") else {}
            if obj.get("type") == kind and all(obj.get(k) == v for k, v in fields.items()):
                found.append(line)
        return found

    def objects(self) -> list[dict]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]


def recorded(harness: str, scenario: str = "") -> Recorded:
    """The recording of ``harness`` at its pinned version (``scenario``: a named variant)."""
    name = f"{harness}-{pinned_version(harness)}{'-' + scenario if scenario else ''}.jsonl"
    header, *lines = (STREAMS / name).read_text().splitlines()
    return Recorded(json.loads(header)["recorded"], lines)
