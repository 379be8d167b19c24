"""The CLI screens print what came from agents, specs and users through one function: a title,
a log line, a commit subject or an error carrying escapes reaches the screen as text."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agileplus.dispatch.models import DispatchJob, JobCommit, JobLogLine
from agileplus.features.models import WorkPackage
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db

OSC_TITLE = "\x1b]0;owned\x07"
OSC_CLIPBOARD = "\x1b]52;c;cm0gLXJm\x07"
CSI = "\x1b[2J\x1b[31m"


def hostile_job() -> DispatchJob:
    feature, (wp,) = make_feature_with_wps(1)
    WorkPackage.objects.filter(pk=wp.pk).update(title=f"Login {OSC_TITLE}", state="doing")
    job = DispatchJob.objects.create(id="job_hostile", feature=feature, wp=wp, harness="claude-code",
                                     state="running", started_at=timezone.now(),
                                     current_activity=f"writing {CSI}tests", error=f"bad\rgood{OSC_CLIPBOARD}")
    JobCommit.objects.create(job=job, sha="a" * 40, message=f"feat(WP01): x {OSC_CLIPBOARD}\x08\x08")
    for seq, (stream, line) in enumerate((("agent", f"Write: a.rs {OSC_CLIPBOARD}"),
                                          ("agent", f"Bash: echo {CSI}\r\x08done")), start=1):
        JobLogLine.objects.create(job=job, seq=seq, timestamp=timezone.now(), stream=stream, line=line)
    return job


@pytest.mark.parametrize("command", ["status {slug}", "logs {slug} WP01", "logs {slug} WP01 --raw",
                                     "jobs show job_hostile --log", "jobs list", "feature list"])
def test_no_escape_byte_reaches_the_screen(command):
    job = hostile_job()

    result = run_cli(command.format(slug=job.feature.slug))
    out = result.output

    assert result.exit_code == 0, out
    assert "\x1b" not in out and "\r" not in out and "\x08" not in out and "\x07" not in out
    assert out.strip()


def test_the_escape_is_shown_as_text_where_it_was():
    job = hostile_job()

    out = run_cli(f"status {job.feature.slug}").output

    assert "Login \\x1b]0;owned\\x07" in out
    assert "Current task: writing \\x1b[2J\\x1b[31mtests" in out


def test_an_error_naming_hostile_input_is_shown_as_text():
    make_feature_with_wps(1)

    result = run_cli(["status", f"nope{OSC_TITLE}"])

    assert result.exit_code != 0 and "\x1b" not in result.output
