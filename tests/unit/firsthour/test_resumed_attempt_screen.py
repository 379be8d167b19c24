"""A job's second attempt resumed the first one's branch and made no commit of its own: its
screens count its own commits and name the first attempt's apart, not as its own."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agileplus.cli.commands_dispatch import _commits_text
from agileplus.dispatch.models import DispatchJob, JobCommit
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


def resumed_job() -> DispatchJob:
    feature, (wp,) = make_feature_with_wps(1)
    job = DispatchJob.objects.create(id="job_resumed", feature=feature, wp=wp, harness="claude-code",
                                     state="succeeded", attempt=2, max_attempts=2, started_at=timezone.now(),
                                     finished_at=timezone.now())
    for n in (1, 2):
        JobCommit.objects.create(job=job, attempt=1, sha=f"{n}" * 40, message=f"feat(WP01): step {n}")
    return job


def test_the_completed_line_counts_no_new_commit_and_the_earlier_attempts_apart():
    assert _commits_text(resumed_job()) == "no new commit (and 2 commits from earlier attempts)"


def test_jobs_show_marks_the_earlier_attempts_commits():
    resumed_job()

    out = run_cli("jobs show job_resumed").output

    assert "  1111111 feat(WP01): step 1 (attempt 1)" in out
