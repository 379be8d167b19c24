"""What a person reads after a run of the real pinned Claude Code (scripted endpoint): `logs` in
the example's words with paths relative to the worktree, `logs --raw` with the CLI's tool lines,
and a write the CLI's own permission rules refused named in the block reason (not git's
`nothing to commit`)."""

from __future__ import annotations

import re

import pytest

from harnesses.endpoints import Run, Say, Turn, Write
from tests.integration.dispatch.test_real_clis import SCRIPT, agileplus, last_reason, run_inline

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def shown(tmp_path, *args: str) -> list[str]:
    out = agileplus(tmp_path, "logs", "003", "WP01", *args).stdout
    return [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line) for line in out.splitlines()]


def test_logs_of_a_real_claude_code_run_read_as_the_examples_activity(tmp_path):
    result, job, _endpoint, _feature = run_inline(tmp_path, SCRIPT)
    assert job.state == "succeeded", result.stdout + result.stderr

    lines = shown(tmp_path)

    assert "Created wp01/file_1.txt (1 line)" in lines
    assert not any(job.worktree in line or line.startswith(("Write:", "Bash:")) for line in lines), lines
    assert lines.count("Done: committed.") <= 1


def test_logs_raw_of_the_same_run_keep_the_clis_tool_lines(tmp_path):
    _result, job, _endpoint, _feature = run_inline(tmp_path, SCRIPT)

    lines = shown(tmp_path, "--raw")

    assert any(line.startswith("Write: ") and job.worktree in line for line in lines), lines
    assert "Created wp01/file_1.txt (1 line)" not in lines


def test_a_write_the_clis_permission_rules_refused_is_the_block_reason(tmp_path):
    script = [Turn([Say("Writing the token."), Write("secrets/token.txt", "leak\n")]),
              Turn([Run("git add -A && git commit -q -m 'feat(WP01): token'")]), Turn([Say("Done.")])]

    result, job, _endpoint, feature = run_inline(tmp_path, script)

    assert job.state == "failed" and last_reason(feature) == "no_commit", result.stdout
    assert "it was refused writing secrets/token.txt" in job.error, job.error
    assert "secrets/token.txt" in job.result.get("denied_paths", []), job.result
