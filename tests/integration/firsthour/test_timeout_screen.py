"""The timeout path as the example shows it: a warning step (log line + event) before SIGTERM,
then the failure screen, compared line by line with only values masked."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from agileplus.dispatch.models import DispatchJob, JobLogLine
from agileplus.events.models import Event
from tests.support.farm import ROOT, import_target, job_env, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# The example's screen (Error Handling), our values masked as <…>.
FAILURE_SCREEN = """\
Agent session timeout after 10 seconds.
Capturing partial output...
Agent failed:
  Exit code: -1 (timeout)
  Commits made: 1 (partial work)
  Tests: not run
WP01 moved to Blocked state.
Audit entry recorded: actor=system:timeout, transition=WP01:doing->blocked
Reason: Agent timeout (SIGTERM, then SIGKILL after the 2s grace period)
Next steps:
  Option 1: Review partial commits and continue manually
    cd <worktree>
    git log --oneline   # see what was done
    # ... continue work, commit ...
    git push origin HEAD:feat/003-auth-system-WP01
    agileplus wp transition 003-auth-system WP01 --to for_review
  Option 2: Retry on this branch (the agent resumes its session where it stopped)
    agileplus wp transition 003-auth-system WP01 --to planned   # reset
    agileplus implement 003-auth-system --wp WP01 --agent command --timeout 10
  Option 3: Retry with a fresh agent session from main (this branch is kept on the origin under salvage/)
    agileplus implement 003-auth-system --wp WP01 --agent command --timeout 10 --fresh"""


@pytest.fixture
def timed_out(tmp_path):
    """`implement` of an agent that commits once and then ignores SIGTERM, past a 10 s timeout."""
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:1,stubborn",
                            environment={"GRANDCHILD_PID_FILE": str(tmp_path / "grandchild.pid")},
                            agent={"timeout_seconds": 10, "retries": 0})
    feature = import_target(repo)
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"), AGILEPLUS_TIMEOUT_WARNING_SECONDS="4")
    done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--inline"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    return done, DispatchJob.objects.get(feature=feature, wp__code="WP01")


# Serial: whether the agent ends on SIGTERM or is SIGKILLed after the warning depends on it getting
# the CPU within the grace period (README, Tests).
@pytest.mark.serial
def test_the_timeout_screen_is_the_examples_line_by_line(timed_out):
    done, job = timed_out
    lines = done.stdout.splitlines()
    screen = "\n".join(lines[lines.index("Agent session timeout after 10 seconds."):])

    assert done.returncode == 1
    assert screen.replace(job.worktree, "<worktree>") == FAILURE_SCREEN


def test_a_warning_is_logged_and_published_before_the_sigterm(timed_out):
    _done, job = timed_out
    log = list(JobLogLine.objects.filter(job=job, stream="agileplus").order_by("seq").values_list("line", flat=True))
    warning = next(i for i, line in enumerate(log) if line.startswith("Warning: agent session timeout in"))
    sigterm = next(i for i, line in enumerate(log) if line.startswith("Stopping agent: timeout"))

    assert warning < sigterm
    assert re.fullmatch(r"Warning: agent session timeout in [0-4] seconds \(timeout 10 seconds\); then SIGTERM, "
                        r"2s grace, SIGKILL", log[warning])  # 4 s before, give or take a loaded machine
    event = Event.objects.get(subject=f"agileplus.agent.job.{job.id}.timeout_warning")
    assert event.payload["timeout_secs"] == 10 and 0 <= event.payload["seconds_left"] <= 4
