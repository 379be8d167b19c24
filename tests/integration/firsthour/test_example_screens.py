"""The example's screens after a real run (`implement`, `review`, `move`, `status`, `status
--watch`, `logs`, `events audit-verify`), compared line by line with only the values (times,
durations, ids, counts) masked; and the review's parsed test counts in the job's result, the
`completed` event and `status`. Ours shows the deliverables of every WP (issue 15), where the
example's excerpts show them on the ready WP only."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from agileplus.dispatch.models import DispatchJob, JobCommit
from agileplus.events.models import Event
from tests.support.farm import ROOT, import_target, job_env, make_target_repo, start_worker, stop

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TESTS = "".join(f"def test_{n}():\n    assert True\n\n\n" for n in range(3))
REVIEW = {"checks": [{"name": "tests", "command": f"{sys.executable} -m pytest -q -p no:cacheprovider tests",
                      "parser": "pytest"},
                     {"name": "governance"}, {"name": "commit_convention"}]}


REVIEW_SCREEN = [
    "Reviewing WP01: Work package WP01",
    "Deliverables Check",
    "  ✓ wp01/file_1.txt (1 line)",
    "  ✓ 1/1 deliverables present",
    "Test Quality",
    "  ✓ All tests pass (3/3)",
    "Specification Compliance",
    "  – FR-001 users can log in. — no evidence yet (no check, test, commit or evidence record of this WP names "
    "FR-001)",
    "Governance",
    "  ✓ Commit messages follow convention",
    "  ✓ Only allowed paths modified",
    "  ✓ No forbidden files touched",
    "  ✓ Audit trail intact",
    "Result: APPROVED ✓",
]


def agileplus(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"), AGILEPLUS_ACTOR="human:alice")
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def masked(text: str) -> list[str]:
    text = re.sub(r"Completed: \d+ (second|minute|hour|day)s?$", "Completed: <duration>", text, flags=re.M)
    return text.splitlines()


@pytest.fixture
def farm(tmp_path):
    """The example's feature (WP01 ← WP02 ← WP03) whose review runs three real pytest tests;
    WP01 implemented by the scripted agent (two commits)."""
    feature = import_target(make_target_repo(tmp_path, files={"tests/test_login.py": TESTS}, review=REVIEW))
    done = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline")
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp_path, feature, done.stdout


@pytest.fixture
def merged(farm):
    """The example after WP01's review (inline: no worker runs here) and its move to done, the
    merge that unblocks WP02. The tests that take it read ``tmp_path``: the farm's folder."""
    tmp_path, _feature, _screen = farm
    agileplus(tmp_path, "review", "003", "WP01", "--inline")
    agileplus(tmp_path, "move", "003", "WP01", "--to", "done")


def test_the_tests_counted_when_the_agent_finishes_are_in_the_result_and_the_completed_event(farm):
    _tmp, feature, _screen = farm
    job = DispatchJob.objects.get(feature=feature, wp__code="WP01")
    completed = Event.objects.get(subject=f"agileplus.agent.job.{job.id}.completed")

    assert job.result["tests"] == {"passed": 3, "failed": 0, "total": 3}
    assert (completed.payload["tests_passed"], completed.payload["tests_total"]) == (3, 3)


def masked_dispatch(screen: str) -> str:
    screen = re.sub(r"\((\d+\.\d) KB\)", "(<size>)", screen)
    screen = re.sub(r": \d+\.\d KB$", ": <size>", screen, flags=re.M)
    screen = re.sub(r"Base commit: [0-9a-f]{7} ", "Base commit: <sha> ", screen)
    screen = re.sub(r"Session: job_\w+", "Session: <job>", screen)
    return re.sub(r"Started: [\d-]+ [\d:]+ UTC", "Started: <time> UTC", screen)


def test_implement_is_the_examples_screen(farm):
    _tmp, _feature, screen = farm

    assert masked_dispatch(screen).splitlines() == [
        "Dispatching WP01 to command...",
        "Workspace setup:",
        "  Worktree: .worktrees/003-auth-system-WP01",
        "  Branch: feat/003-auth-system-WP01",
        "  Base commit: <sha> (main)",
        "Prompt prepared:",
        "  Feature spec: 003-auth-system (<size>)",
        "  Work package plan: WP01 (<size>)",
        "  Deliverables list: 1 file",
        "  Governance constraints: <size>",
        "  Total prompt: <size>",
        "Dispatching to command harness...",
        "Session: <job>",
        "Started: <time> UTC",
        "Waiting for agent to initialize...",
        "Agent ready. Working on WP01.",
        "✓ Agent completed: 2 commits, 2 files changed; WP01 is for_review.",
        "Next: agileplus review 003-auth-system WP01",
    ]


def test_status_of_a_wp_for_review_is_the_examples_screen(farm):
    tmp_path, _feature, _screen = farm
    lines = masked(agileplus(tmp_path, "status", "003").stdout)

    assert lines[2:8] == [
        "WP01 Work package WP01            ██████░░░░░░ for_review",
        "  Deliverables: wp01/file_1.txt",
        "  Commits: 2 (ahead of main)",
        "  Files: 2 changed",
        "  Tests: 3 passing",
        "  Agent: command (completed)",
    ]


def test_review_on_a_review_worker_is_the_examples_screen(farm):
    tmp_path, _feature, _screen = farm
    worker = start_worker("w-review", tmp_path / "w-review", broker_url=None, broker_dir=tmp_path / "broker")
    try:
        reviewed = agileplus(tmp_path, "review", "003", "WP01")
    finally:
        stop([worker])

    assert reviewed.returncode == 0, reviewed.stdout + reviewed.stderr
    assert reviewed.stdout.splitlines() == REVIEW_SCREEN
    assert "Running the checks on worker worker@w-review..." in reviewed.stderr.splitlines()


def test_move_to_done_is_the_examples_screen(farm):
    tmp_path, _feature, _screen = farm
    assert agileplus(tmp_path, "review", "003", "WP01", "--inline").returncode == 0

    lines = agileplus(tmp_path, "move", "003", "WP01", "--to", "done").stdout.splitlines()

    assert lines == [
        "WP01 moved to done",
        "Merging branch feat/003-auth-system-WP01 → main",
        "✓ Merged (2 commits, 2 files)",
        "Dependency resolution:",
        "  WP02 (Work package WP02) is now unblocked",
    ]


def test_status_after_the_merge_is_the_examples_screen(merged, tmp_path):
    lines = masked(agileplus(tmp_path, "status", "003").stdout)

    assert lines == [
        "Feature: 003-auth-system",
        "State: Implementing",
        "WP01 Work package WP01            ████████████ done",
        "  Deliverables: wp01/file_1.txt",
        "  Commits: 2 | Files: 2 | Tests: 3/3 passing",
        "  Agent: command | Completed: <duration>",
        "  Review cycles: 1 (approved on first pass)",
        "WP02 Work package WP02            ░░░░░░░░░░░░ ready (unblocked)",
        "  Deliverables: wp02/file_1.txt",
        "  Blocked by: WP01 (unblocked)",
        "  Est. effort: 1 day",
        "WP03 Work package WP03            ░░░░░░░░░░░░ planned (blocked)",
        "  Deliverables: wp03/file_1.txt",
        "  Blocked by: WP02",
        "  Est. effort: 1 day",
        "Total WP progress: 1/3 (33%)",
        "Estimated completion: 2 days",
    ]


def test_implement_of_a_wp_its_dependency_merged_is_the_examples_step_10_screen(merged, tmp_path):
    screen = agileplus(tmp_path, "implement", "003", "--wp", "WP02", "--inline").stdout

    # The example's Step 10 in the words of its Step 3 (`Deliverables list`, `Total prompt`, the
    # governance size, `harness...`, `Working on`): one implement screen, not two wordings.
    assert masked_dispatch(screen).splitlines()[:17] == [
        "Dispatching WP02 to command...",
        "Workspace setup:",
        "  Worktree: .worktrees/003-auth-system-WP02",
        "  Branch: feat/003-auth-system-WP02",
        "  Base commit: <sha> (main - includes WP01)",
        "Prompt prepared:",
        "  Feature spec: 003-auth-system (<size>)",
        "  Work package plan: WP02 (<size>)",
        "  Deliverables list: 1 file",
        "  Governance constraints: <size>",
        "  Constraint notes: WP01 completion unblocks this",
        "  Total prompt: <size>",
        "Dispatching to command harness...",
        "Session: <job>",
        "Started: <time> UTC",
        "Waiting for agent to initialize...",
        "Agent ready. Working on WP02.",
    ]


def at_time(lines: list[str]) -> list[str]:
    return [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "[<time>] ", line) for line in lines]


def test_logs_is_the_examples_screen(farm):
    tmp_path, feature, _screen = farm
    job = DispatchJob.objects.get(feature=feature, wp__code="WP01")
    agent_said = {f"[<time>] {line}" for line in job.log_lines.filter(stream="agent").values_list("line", flat=True)}

    shown = at_time(agileplus(tmp_path, "logs", "WP01", "--tail", "20").stdout.splitlines())

    # The agent's own lines interleave with ours as they arrive; each source in its order.
    assert [line for line in shown if line not in agent_said] == [
        "[<time>] Agent session started",
        "[<time>] Commit: feat(WP01): change 1",
        "[<time>] Commit: feat(WP01): change 2",
        "[<time>] Governance: 2 commits checked, no violation",
        "[<time>] Agent finished: exit 0, 2 commits, 2 files changed",
        "[<time>] Tests passing: 3/3",
    ]
    assert [line for line in shown if line in agent_said] == [
        "[<time>] agent starting WP01: commit:2",
        "[<time>] committed: feat(WP01): change 1",
        "[<time>] committed: feat(WP01): change 2",
    ]


def test_logs_in_the_examples_form_with_the_feature_is_the_same_screen(farm):
    tmp_path, _feature, _screen = farm

    with_feature = agileplus(tmp_path, "logs", "003", "WP01", "--tail", "20").stdout

    assert with_feature == agileplus(tmp_path, "logs", "WP01", "--tail", "20").stdout
    assert with_feature.startswith("[") and "Agent session started" in with_feature.splitlines()[0]


def test_audit_verify_is_the_examples_screen(merged, tmp_path):
    verified = agileplus(tmp_path, "events", "audit-verify", "--feature", "003-auth-system")
    screen = re.sub(r"\(id=\d+, row \d+\)", "(id=<id>)", re.sub(r"\(\d+ entries", "(<n> entries", verified.stdout))

    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The example's chain ends at `WP02 done`; ours records the unblocking that follows a merge too.
    assert screen.splitlines() == [
        "✓ Audit chain intact (<n> entries verified)",
        "Hash coverage: created (id=<id>) → WP02 unblocked (id=<id>)",
    ]


@pytest.fixture
def running(tmp_path):
    """WP01's agent has made its two commits and works on (sleeps) while the test looks."""
    feature = import_target(make_target_repo(tmp_path, behaviour="commit:2,sleep:120"))
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"), AGILEPLUS_ACTOR="human:alice")
    implementing = subprocess.Popen([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--inline"],
                                    cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        # both commits reported, and the agent's line after the second read (they race by a line)
        while JobCommit.objects.filter(job__feature=feature, job__state="running").count() < 2 or not (
                DispatchJob.objects.filter(feature=feature, current_activity="committed: feat(WP01): change 2")
                .exists()):
            assert time.monotonic() < deadline and implementing.poll() is None, "the agent never made 2 commits"
            time.sleep(0.3)
        yield tmp_path, DispatchJob.objects.get(feature=feature)
    finally:
        job = DispatchJob.objects.filter(feature=feature).first()
        if job is not None and implementing.poll() is None:
            agileplus(tmp_path, "jobs", "cancel", job.id)
        implementing.wait(timeout=60)


def first_watch_frame(tmp_path) -> list[str]:
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))
    watching = subprocess.Popen([sys.executable, "-m", "agileplus", "status", "003", "--watch"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        frame = []
        for line in watching.stdout:  # a pipe: one frame after another, each ending in "(refreshed …)"
            frame.append(line.rstrip("\n"))
            if line.startswith("(refreshed "):
                return frame
        raise AssertionError(f"no frame: {frame}")
    finally:
        watching.kill()
        watching.wait()


def test_status_watch_of_a_running_wp_is_the_examples_screen(running):
    tmp_path, job = running

    frame = first_watch_frame(tmp_path)
    frame = [re.sub(r"Started: \d\d:\d\d UTC", "Started: <time> UTC",
                    re.sub(r"\(refreshed [\d:]+;", "(refreshed <time>;", line.replace(job.id, "<job>")))
             for line in frame]

    assert frame == [
        "Feature: 003-auth-system",
        "State: Implementing",
        "WP01 Work package WP01            ██████░░░░░░ doing (command)",
        "  Deliverables: wp01/file_1.txt",
        "  Session: <job>",
        "  Started: <time> UTC",
        "  Files changed: 2",
        "  Commits: 2",
        "  Current task: committed: feat(WP01): change 2",
        "WP02 Work package WP02            ░░░░░░░░░░░░ planned (blocked)",
        "  Deliverables: wp02/file_1.txt",
        "  Blocked by: WP01",
        "  Est. effort: 1 day",
        "WP03 Work package WP03            ░░░░░░░░░░░░ planned (blocked)",
        "  Deliverables: wp03/file_1.txt",
        "  Blocked by: WP02",
        "  Est. effort: 1 day",
        "Total WP progress: 0/3 (0%)",
        "Estimated completion: 3 days",
        "",
        "(refreshed <time>; Ctrl-C to stop)",
    ]
