"""The example's screens after a real run (`implement`, `review`, `move`, `status`), compared
line by line with only the values (times, durations, ids) masked; and the review's parsed test
counts in the job's result, the `completed` event and `status`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from agileplus.dispatch.models import DispatchJob
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


def test_the_tests_counted_when_the_agent_finishes_are_in_the_result_and_the_completed_event(farm):
    _tmp, feature, _screen = farm
    job = DispatchJob.objects.get(feature=feature, wp__code="WP01")
    completed = Event.objects.get(subject=f"agileplus.agent.job.{job.id}.completed")

    assert job.result["tests"] == {"passed": 3, "failed": 0, "total": 3}
    assert (completed.payload["tests_passed"], completed.payload["tests_total"]) == (3, 3)


def test_implement_is_the_examples_screen(farm):
    _tmp, _feature, screen = farm
    screen = re.sub(r"\((\d+\.\d) KB\)", "(<size>)", screen)
    screen = re.sub(r": \d+\.\d KB$", ": <size>", screen, flags=re.M)
    screen = re.sub(r"Base commit: [0-9a-f]{7} ", "Base commit: <sha> ", screen)
    screen = re.sub(r"Session: job_\w+", "Session: <job>", screen)
    screen = re.sub(r"Started: [\d-]+ [\d:]+ UTC", "Started: <time> UTC", screen)

    assert screen.splitlines() == [
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

    assert lines[2:7] == [
        "WP01 Work package WP01            ██████░░░░░░ for_review",
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


def test_status_after_the_merge_is_the_examples_screen(farm):
    tmp_path, _feature, _screen = farm
    agileplus(tmp_path, "review", "003", "WP01", "--inline")
    agileplus(tmp_path, "move", "003", "WP01", "--to", "done")

    lines = masked(agileplus(tmp_path, "status", "003").stdout)

    assert lines == [
        "Feature: 003-auth-system",
        "State: Implementing",
        "WP01 Work package WP01            ████████████ done",
        "  Commits: 2 | Files: 2 | Tests: 3/3 passing",
        "  Agent: command | Completed: <duration>",
        "  Review cycles: 1 (approved on first pass)",
        "WP02 Work package WP02            ░░░░░░░░░░░░ ready (unblocked)",
        "  Deliverables: wp02/file_1.txt",
        "  Blocked by: WP01 (unblocked)",
        "  Est. effort: 1 day",
        "WP03 Work package WP03            ░░░░░░░░░░░░ planned (blocked)",
        "  Blocked by: WP02",
        "  Est. effort: 1 day",
        "Total WP progress: 1/3 (33%)",
        "Estimated completion: 2 days",
    ]


def test_implement_of_a_wp_its_dependency_unblocked_notes_the_constraint(farm):
    tmp_path, _feature, _screen = farm
    agileplus(tmp_path, "review", "003", "WP01", "--inline")
    agileplus(tmp_path, "move", "003", "WP01", "--to", "done")

    lines = agileplus(tmp_path, "implement", "003", "--wp", "WP02", "--inline").stdout.splitlines()

    notes = lines.index("  Constraint notes: WP01 completion unblocks this")
    assert lines[notes - 1].startswith("  Governance constraints: ") and lines[notes + 1].startswith("  Total prompt: ")
