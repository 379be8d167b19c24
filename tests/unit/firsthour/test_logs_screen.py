"""`logs`: the example's readable activity by default (Step 6), the CLI's raw tool lines with `--raw`."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from agileplus.dispatch.models import ACTIVITY_STREAM, TOOL_STREAM, DispatchJob, JobLogLine
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db

LOG = [("agileplus", "Agent session started"),
       (TOOL_STREAM, "Write: /data/worker/.worktrees/003-WP02/src/handlers/login.rs"),
       (ACTIVITY_STREAM, "Created src/handlers/login.rs (245 lines)"),
       (TOOL_STREAM, "Bash: git add src && git commit -m 'feat(WP02): login'"),
       (TOOL_STREAM, "[feat/003-WP02 fcf4eb8] feat(WP02): login\n 1 file changed"),
       ("agileplus", "Commit: feat(WP02): login"),
       ("agent", "Working on rate limiting middleware...")]


def job_with_log() -> DispatchJob:
    feature, (wp,) = make_feature_with_wps(1)
    job = DispatchJob.objects.create(id="job_logs", feature=feature, wp=wp, harness="claude-code", state="running",
                                     started_at=timezone.now())
    for seq, (stream, line) in enumerate(LOG, start=1):
        JobLogLine.objects.create(job=job, seq=seq, timestamp=timezone.now(), stream=stream, line=line)
    return job


def shown(command: str) -> list[str]:
    return [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line) for line in run_cli(command).output.splitlines()]


def test_logs_shows_what_the_agent_did_in_words():
    job = job_with_log()

    assert shown(f"logs {job.feature.slug} {job.wp.code}") == [
        "Agent session started", "Created src/handlers/login.rs (245 lines)", "Commit: feat(WP02): login",
        "Working on rate limiting middleware..."]


def test_logs_raw_shows_the_clis_tool_lines_instead():
    job = job_with_log()

    lines = shown(f"logs {job.feature.slug} {job.wp.code} --raw")

    assert "Write: /data/worker/.worktrees/003-WP02/src/handlers/login.rs" in lines
    assert "Created src/handlers/login.rs (245 lines)" not in lines
