"""The example's step 2 screen (`agileplus status 003`) line by line, with only values masked,
and its deliverables: on every WP (issue 15), from the front matter or else from the plan."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.utils import timezone

from agileplus.dispatch.models import DispatchJob, JobCommit
from agileplus.features.importer import import_path
from agileplus.features.models import WorkPackage
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "003-auth-system"

# The example's Step 2 screen. Ours aligns the bars (titles padded to one width) and, as issue 15
# asks, shows the deliverables of every WP, not only of the ready one: the two lines marked +.
STEP_2 = """\
Feature: 003-auth-system
State: Implementing
WP01 User & Session Models ████████████ done
+ Deliverables: src/models/user.rs, src/models/session.rs
  Commits: 4 | Files: 3 | Tests: 18/18 passing
  Agent: claude-code | Completed: 2 days ago
WP02 Login Endpoint ░░░░░░░░░░░░ planned (ready)
  Deliverables: login_handler.rs, tests
  Blocked by: WP01 (unblocked)
  Est. effort: 3 days
WP03 Session Middleware ░░░░░░░░░░░░ planned (blocked)
+ Deliverables: src/middleware/session.rs, tests/session_middleware_test.rs
  Blocked by: WP02
  Est. effort: 2 days
Total WP progress: 1/3 (33%)
Estimated completion: 5 days"""


def screen(ref: str) -> list[str]:
    """`status` as lines, the bars' alignment undone (one space after the title)."""
    out = run_cli(f"status {ref}").output
    return [re.sub(r"^(WP\d+ .+?) +([█░]{12})", r"\1 \2", line) for line in out.splitlines()]


def expected(text: str) -> list[str]:
    return [line.replace("+ ", "  ", 1) if line.startswith("+ ") else line for line in text.splitlines()]


def test_status_of_the_examples_feature_is_the_step_2_screen():
    (feature,) = import_path(EXAMPLE, actor="human:alice")
    wp1 = feature.work_packages.get(code="WP01")
    two_days_ago = timezone.now() - dt.timedelta(days=2, minutes=1)
    WorkPackage.objects.filter(pk=wp1.pk).update(done_at=two_days_ago)
    job = DispatchJob.objects.create(id="sess_w7k2j3l9m", feature=feature, wp=wp1, harness="claude-code",
                                     state="succeeded", finished_at=two_days_ago,
                                     result={"tests": {"passed": 18, "failed": 0, "total": 18}})
    for n, files in enumerate((["src/models/user.rs"], ["src/models/session.rs"], ["migrations/001.sql"], [])):
        JobCommit.objects.create(job=job, sha=f"c{n}", message=f"feat(WP01): step {n}", files=files)

    assert screen("003") == expected(STEP_2)


def test_a_running_wp_shows_its_deliverables_first():
    feature, (wp,) = make_feature_with_wps(1)
    WorkPackage.objects.filter(pk=wp.pk).update(state="doing", deliverables=["src/handlers/login.rs", "tests"])
    DispatchJob.objects.create(id="job_doing", feature=feature, wp=wp, harness="claude-code", state="running",
                               session_id="sess_w7k2j3l9m", started_at=timezone.now())

    lines = screen(feature.slug)

    assert lines[2].endswith("██████░░░░░░ doing (claude-code)")
    assert lines[3:5] == ["  Deliverables: src/handlers/login.rs, tests", "  Session: sess_w7k2j3l9m"]


def test_a_wp_that_declares_no_deliverables_shows_no_deliverables_line():
    feature, (wp,) = make_feature_with_wps(1)
    WorkPackage.objects.filter(pk=wp.pk).update(deliverables=[])

    assert not any("Deliverables" in line for line in screen(feature.slug))


def test_a_wp_a_review_sent_back_to_doing_says_no_agent_is_running_and_how_to_dispatch_one():
    feature, (wp,) = make_feature_with_wps(1)
    WorkPackage.objects.filter(pk=wp.pk).update(state="doing", deliverables=[])
    DispatchJob.objects.create(id="job_done", feature=feature, wp=wp, harness="claude-code", state="succeeded",
                               started_at=timezone.now(), finished_at=timezone.now())

    lines = screen(feature.slug)

    assert lines[2].endswith("██████░░░░░░ doing (no agent running)")
    assert lines[3:5] == ["  Last job: job_done (succeeded)",
                          f"  Next: agileplus implement {feature.slug} --wp WP01   # dispatch an agent again"]
