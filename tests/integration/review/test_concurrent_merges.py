"""Two WPs moved to done at the same moment by two processes: merges of one repository take
turns under a lease lock in the database; a conflict leaves main untouched and the WP in review."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from tests.support.cli import run_cli
from tests.support.farm import ROOT, import_target, make_target_repo
from tests.support.server import subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def both_ready_for_review(tmp_path, behaviour: str):
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []}, behaviour=behaviour)
    feature = import_target(repo)
    for code in ("WP01", "WP02"):
        assert "for_review" in run_cli(f"implement 003 --wp {code} --inline").output
    return repo, feature


def move_both_at_once() -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-m", "agileplus", "move", "003", code, "--to", "done",
                               "--actor", "human:alice"], cwd=ROOT, env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for code in ("WP01", "WP02")]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), p.stdout.read(), "") for p in procs]


def test_two_merges_at_once_both_land_in_turn(tmp_path):
    repo, feature = both_ready_for_review(tmp_path, "commit:1")

    results = move_both_at_once()

    assert [r.returncode for r in results] == [0, 0], [r.stdout for r in results]
    tree = repo.git("ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"wp01/file_1.txt", "wp02/file_1.txt"} <= set(tree)
    merges = repo.git("log", "--merges", "--format=%s", "main").splitlines()
    assert len(merges) == 2
    assert {wp.state for wp in feature.work_packages.all()} == {"done"}
    assert verify_chain(feature).ok


def test_the_second_of_two_conflicting_merges_stops_cleanly(tmp_path):
    repo, feature = both_ready_for_review(tmp_path, "write:shared.txt")

    results = move_both_at_once()

    assert sorted(r.returncode == 0 for r in results) == [False, True], [r.stdout for r in results]
    loser = "WP01" if results[0].returncode else "WP02"
    winner = "WP02" if loser == "WP01" else "WP01"
    failed = results[0] if results[0].returncode else results[1]
    assert "conflict" in failed.stdout.lower() and "shared.txt" in failed.stdout
    assert "Traceback" not in failed.stdout
    assert repo.git("show", "main:shared.txt") == f"{winner} wrote this"
    assert repo.git("status", "--porcelain") == ""  # the origin's checkout is clean, no conflict markers
    assert feature.work_packages.get(code=loser).state == "for_review"
    entry = AuditEntry.objects.filter(feature=feature, wp__code=loser).order_by("-seq").first()
    assert entry.transition == f"{loser}:merge_conflict"
    assert "shared.txt" in entry.metadata["conflicts"]
    assert verify_chain(feature).ok
