"""The merge queue on a real small Python project with the real review checks: main only ever
moves to a tree on which the checks passed, the WP that breaks a batch is named and sent back,
and the others merge."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.events.models import Event
from agileplus.review.merge_queue import enqueue, process_queue
from agileplus.review.models import MergeQueueEntry, ReviewReport
from tests.integration.api.conftest import client_for
from tests.support.cli import run_cli
from tests.support.farm import CALC_PROJECT, PYTEST_CHECK, TargetRepo, import_target, make_target_repo, outbox_dir

pytestmark = [pytest.mark.django_db(transaction=True)]

REVIEW = {"checks": [{"name": "deliverables"}, PYTEST_CHECK, {"name": "governance"}, {"name": "commit_convention"}]}
PROJECT = CALC_PROJECT
# One WP changes add()'s signature (and its own test); another adds a caller of the old one.
CHANGES = {
    "new signature": {
        "calc/core.py": "def add(values: list[int]) -> int:\n    return sum(values)\n",
        "tests/test_core.py": "from calc.core import add\n\n\ndef test_add():\n    assert add([2, 3]) == 5\n",
    },
    "new caller": {
        "calc/stats.py": "from calc.core import add\n\n\ndef total3(a: int, b: int, c: int) -> int:\n"
                         "    return add(add(a, b), c)\n",
        "tests/test_stats.py": "from calc.stats import total3\n\n\ndef test_total3():\n"
                               "    assert total3(1, 2, 3) == 6\n",
    },
    "unrelated": {
        "calc/text.py": "def shout(s: str) -> str:\n    return s.upper()\n",
        "tests/test_text.py": "from calc.text import shout\n\n\ndef test_shout():\n    assert shout('a') == 'A'\n",
    },
}


def approved_wps(tmp_path: Path, changes: dict[str, str], *, merge: dict | None = None, extra_checks=()):
    """A real project whose WPs (code → change) were each dispatched and reviewed alone on main:
    every review approved."""
    env = {}
    for code, change in changes.items():
        source = outbox_dir(tmp_path, f"change-{code}")  # the agent reads it from inside its sandbox
        for name, text in CHANGES[change].items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_text(text)
        env[f"AGENT_BEHAVIOUR_{code}"] = f"apply:{source}"
    review = {"checks": [*REVIEW["checks"], *extra_checks]}
    repo = make_target_repo(tmp_path, wps={code: [] for code in changes}, files=PROJECT, review=review,
                            environment=env, merge=merge)
    feature = import_target(repo)
    for code, change in changes.items():
        feature.work_packages.filter(code=code).update(deliverables=sorted(CHANGES[change]))
    for code in changes:
        assert "for_review" in run_cli(f"implement 003 --wp {code} --inline").output
    for code in changes:
        review = run_cli(f"review 003 {code} --inline")
        assert "Result: APPROVED ✓" in review.output, review.output
    return repo, feature


def approve_in_order(feature, codes: list[str]) -> None:
    """The automated review approves them one after the other; the queue runs once they are all in."""
    for code in codes:
        enqueue(feature.work_packages.get(code=code), actor="ci:automation")
    process_queue(feature.project.repo_url)


def suite_passes_at(repo: TargetRepo, commit: str, tmp_path: Path) -> bool:
    checkout = tmp_path / f"at-{commit[:12]}"
    repo.git("worktree", "add", "--detach", str(checkout), commit)
    try:
        done = subprocess.run(PYTEST_CHECK["command"], shell=True, cwd=checkout, capture_output=True,
                              env={**os.environ, **PYTEST_CHECK["env"]}, timeout=PYTEST_CHECK["timeout"])
        return done.returncode == 0
    finally:
        repo.git("worktree", "remove", "--force", str(checkout))


def first_parent_history(repo: TargetRepo) -> list[str]:
    return repo.git("rev-list", "--first-parent", "--reverse", "main").splitlines()


def test_a_caller_of_a_changed_signature_never_reaches_main_and_goes_back_to_its_agent(tmp_path):
    repo, feature = approved_wps(tmp_path, {"WP01": "new signature", "WP02": "new caller"})

    approve_in_order(feature, ["WP01", "WP02"])

    assert feature.work_packages.get(code="WP01").state == "done"
    assert feature.work_packages.get(code="WP02").state == "doing"
    assert "calc/stats.py" not in repo.git("ls-tree", "-r", "--name-only", "main")
    assert suite_passes_at(repo, repo.head("main"), tmp_path)


def test_the_breaking_wp_is_named_with_its_failing_checks(tmp_path):
    _repo, feature = approved_wps(tmp_path, {"WP01": "new signature", "WP02": "new caller"})

    approve_in_order(feature, ["WP01", "WP02"])

    ejected = MergeQueueEntry.objects.get(wp__code="WP02")
    assert ejected.state == "ejected" and "WP02 fails tests when merged with main" in ejected.reason
    entry = AuditEntry.objects.filter(feature=feature, transition="WP02:merge_ejected").get()
    assert entry.metadata["failed"] == ["tests"]
    report = ReviewReport.objects.filter(wp__code="WP02").first()  # what the agent is sent back with
    assert not report.approved and "✗ Tests failing" in report.text
    event = Event.objects.get(subject="agileplus.merge.003-auth-system.wp.WP02.ejected")
    assert event.payload["failed"] == ["tests"] and "fails tests" in event.payload["reason"]


def test_only_the_combination_of_two_breaks_the_other_two_merge(tmp_path):
    repo, feature = approved_wps(tmp_path, {"WP01": "new caller", "WP02": "unrelated", "WP03": "new signature"})

    approve_in_order(feature, ["WP01", "WP02", "WP03"])

    states = {wp.code: wp.state for wp in feature.work_packages.all()}
    assert states == {"WP01": "done", "WP02": "done", "WP03": "doing"}
    assert MergeQueueEntry.objects.get(wp__code="WP03").state == "ejected"
    tree = repo.git("ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"calc/stats.py", "calc/text.py"} <= set(tree)
    assert repo.git("show", "main:calc/core.py") == PROJECT["calc/core.py"].strip()


def test_every_commit_main_points_to_passed_the_checks_on_that_exact_tree(tmp_path):
    repo, feature = approved_wps(tmp_path, {"WP01": "new caller", "WP02": "unrelated", "WP03": "new signature"})

    approve_in_order(feature, ["WP01", "WP02", "WP03"])

    history = first_parent_history(repo)
    moves = list(AuditEntry.objects.filter(feature=feature, transition="merge_queue:main_moved").order_by("seq"))
    assert [sha for m in moves for sha in m.metadata["first_parent"]] == history[1:]  # all but the initial commit
    for commit in history:
        assert suite_passes_at(repo, commit, tmp_path), f"main was at {commit[:7]}, whose tests fail"
    for move in moves:
        assert "tests" in [c["name"] for c in move.metadata["checks_passed"]]


def test_a_passing_batch_is_one_main_move_naming_its_wps_and_checks(tmp_path):
    repo, feature = approved_wps(tmp_path, {"WP01": "new caller", "WP02": "unrelated"})

    approve_in_order(feature, ["WP01", "WP02"])

    move = AuditEntry.objects.get(feature=feature, transition="merge_queue:main_moved")
    assert move.metadata["wps"] == ["WP01", "WP02"]
    assert move.metadata["candidate"] == repo.head("main")
    assert {c["name"] for c in move.metadata["checks_passed"]} >= {"tests", "secret_scan"}
    assert move.metadata["checks_passed"][-1]["figures"]["passed"] == 3  # core + caller + unrelated


def test_queue_off_merges_without_rechecking_and_main_breaks(tmp_path):
    repo, feature = approved_wps(tmp_path, {"WP01": "new signature", "WP02": "new caller"},
                                 merge={"strategy": "merge", "queue": False})

    for code in ("WP01", "WP02"):
        assert run_cli(f"move 003 {code} --to done --actor human:alice").exit_code == 0

    assert not suite_passes_at(repo, repo.head("main"), tmp_path)  # why `queue: off` is unsafe
    assert not MergeQueueEntry.objects.exists()


def test_a_person_moving_the_breaking_wp_to_done_is_refused_with_the_reason(tmp_path):
    _repo, feature = approved_wps(tmp_path, {"WP01": "new signature", "WP02": "new caller"})
    assert run_cli("move 003 WP01 --to done --actor human:alice").exit_code == 0

    refused = run_cli("move 003 WP02 --to done --actor human:alice")

    assert refused.exit_code == 3
    assert "WP02 fails tests when merged with main" in refused.output and "Traceback" not in refused.output
    assert feature.work_packages.get(code="WP02").state == "for_review"  # a person decides what next


def test_queue_shows_what_was_merged_and_why_a_wp_was_ejected(tmp_path):
    _repo, feature = approved_wps(tmp_path, {"WP01": "new signature", "WP02": "new caller"})
    approve_in_order(feature, ["WP01", "WP02"])

    shown = run_cli("queue 003 --json")

    queue = json.loads(shown.output)["queues"][0]
    outcome = {e["wp"]: e for e in queue["recent"]}
    assert outcome["WP01"]["state"] == "merged" and outcome["WP01"]["batch_wps"] == ["WP01"]
    assert outcome["WP02"]["state"] == "ejected" and "fails tests" in outcome["WP02"]["reason"]
    assert queue["batch_size"] < queue["batch_max"]  # the batch failed: the next one is smaller
    text = run_cli("queue 003").output
    assert "✗ 003-auth-system WP02 ejected: WP02 fails tests" in text


def test_the_api_shows_the_queue_of_a_features_repository(tmp_path):
    _repo, feature = approved_wps(tmp_path, {"WP01": "new signature", "WP02": "new caller"})
    approve_in_order(feature, ["WP01", "WP02"])

    response = client_for("ci").get(f"/api/features/{feature.slug}/merge-queue")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["enabled"] and body["entries"] == []
    assert {e["wp"]: e["state"] for e in body["recent"]} == {"WP01": "merged", "WP02": "ejected"}


def test_main_moved_while_the_candidate_was_tested_is_not_overwritten_and_the_wp_is_retested(tmp_path, monkeypatch):
    # The "outside push" is made by a check reaching the origin: sandboxed checks cannot (that is
    # tests/security's business), so this test runs unsandboxed, on purpose.
    monkeypatch.setenv("AGILEPLUS_SANDBOX", "off")
    armed = tmp_path / "armed"
    outside_push = {"name": "outside_push", "command": f"if [ -e {armed} ]; then rm {armed}; git -C "
                    f"{tmp_path / 'origin'} -c user.name=o -c user.email=o@localhost commit -q --allow-empty "
                    "-m 'pushed outside AgilePlus'; fi"}
    repo, feature = approved_wps(tmp_path, {"WP01": "unrelated"}, extra_checks=[outside_push])
    armed.touch()  # the next check run moves main on the origin while the candidate is tested

    approve_in_order(feature, ["WP01"])

    history = first_parent_history(repo)
    assert repo.git("log", "-1", "--format=%s", history[1]) == "pushed outside AgilePlus"
    move = AuditEntry.objects.get(feature=feature, transition="merge_queue:main_moved")
    assert move.metadata["from"] == history[1] and move.metadata["candidate"] == history[2] == history[-1]
    assert feature.work_packages.get(code="WP01").state == "done"


def test_a_batch_left_by_a_holder_that_died_is_tested_again_once_its_lease_ran_out(tmp_path):
    import datetime as dt

    from django.utils import timezone

    from agileplus.review.models import MergeLock

    repo, feature = approved_wps(tmp_path, {"WP01": "unrelated"})
    wp = feature.work_packages.get(code="WP01")
    MergeQueueEntry.objects.create(repo=feature.project.repo_url, feature=feature, wp=wp, actor="ci:automation",
                                   state="testing", batch="deadbeef")
    MergeLock.objects.filter(repo=feature.project.repo_url).update(  # the reviews created the row
        holder="dead-holder", lease_expires_at=timezone.now() - dt.timedelta(seconds=1))

    process_queue(feature.project.repo_url)

    assert MergeQueueEntry.objects.get(wp=wp).state == "merged"
    assert "calc/text.py" in repo.git("ls-tree", "-r", "--name-only", "main")


def test_a_wp_moved_out_of_review_while_queued_is_not_merged(tmp_path):
    repo, feature = approved_wps(tmp_path, {"WP01": "unrelated"})
    wp = feature.work_packages.get(code="WP01")
    enqueue(wp, actor="ci:automation")
    assert run_cli("wp transition WP01 --feature 003 --to doing --actor human:alice").exit_code == 0

    process_queue(feature.project.repo_url)

    entry = MergeQueueEntry.objects.get(wp=wp)
    assert entry.state == "cancelled" and "left review (doing)" in entry.reason
    assert "calc/text.py" not in repo.git("ls-tree", "-r", "--name-only", "main")
