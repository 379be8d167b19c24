"""Agent Trace v0.1.0 records: which lines of a commit an agent wrote, with which harness, CLI,
model and session, and where the farm keeps the conversation (the job's log)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path

from harnesses.git import git

AGENT_TRACE_VERSION = "0.1.0"
TOOL = {"name": "agileplus", "version": "0.1.0"}
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def added_ranges(path: Path, commit: str) -> dict[str, list[tuple[int, int]]]:
    """{file: [(first line, last line)]} of the lines ``commit`` added or changed, in the commit's
    version of each file (deleted-only hunks and removed files have none)."""
    diff = git("show", "--no-color", "--no-renames", "--no-ext-diff", "-U0", "--format=", commit, cwd=path)
    ranges: dict[str, list[tuple[int, int]]] = {}
    current = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            current = line[6:] if line.startswith("+++ b/") else None
        elif current and (match := _HUNK.match(line)):
            start, count = int(match.group(1)), int(match.group(2) if match.group(2) is not None else 1)
            if count:
                ranges.setdefault(current, []).append((start, start + count - 1))
    return ranges


def trace_record(commit: str, ranges: dict[str, list[tuple[int, int]]], *, conversation_url: str, model: str,
                 farm: dict) -> dict:
    """One Agent Trace record for ``commit``; ``farm``: the job's facts (harness, CLI version,
    session, job, attempt, WP) kept under the vendor key ``dev.agileplus``."""
    conversation = {"url": conversation_url, "contributor": {"type": "ai", **({"model_id": model} if model else {})}}
    return {
        "version": AGENT_TRACE_VERSION,
        "id": str(uuid.uuid4()),
        "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "vcs": {"type": "git", "revision": commit},
        "tool": TOOL,
        "files": [{"path": name, "conversations": [
            {**conversation, "ranges": [{"start_line": a, "end_line": b} for a, b in spans]}]}
            for name, spans in sorted(ranges.items())],
        "metadata": {"dev.agileplus": farm},
    }


def record_text(record: dict) -> str:
    return json.dumps(record, sort_keys=True, indent=1) + "\n"
