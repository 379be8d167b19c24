"""After a merge, branches waiting for review are rebased onto the new main; one that cannot be
rebased keeps its head and its conflict is recorded for the gate."""

from __future__ import annotations

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from tests.support.cli import run_cli
from tests.support.farm import import_target, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True)]


def two_in_review(tmp_path, behaviour: str):
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []}, behaviour=behaviour)
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    for code in ("WP01", "WP02"):
        assert "for_review" in run_cli(f"implement 003 --wp {code} --inline").output
    return repo, feature


def test_a_waiting_branch_is_rebased_onto_main_after_a_merge_and_then_merges_cleanly(tmp_path):
    repo, feature = two_in_review(tmp_path, "commit:1")
    before = repo.head("feat/003-auth-system-WP02")

    assert run_cli("move 003 WP01 --to done --actor human:alice").exit_code == 0

    after = repo.head("feat/003-auth-system-WP02")
    assert after != before
    assert repo.git("merge-base", "--is-ancestor", "main", after) == ""  # main is now its base
    entry = AuditEntry.objects.get(feature=feature, transition="WP02:rebased")
    assert entry.metadata["old_head"] == before and entry.metadata["new_head"] == after
    assert DispatchJob.objects.get(wp__code="WP02", feature=feature).base_commit == repo.head("main")
    assert "APPROVED" in run_cli("review 003 WP02 --apply").output  # governance measures from the new base
    assert feature.work_packages.get(code="WP02").state == "done"
    assert verify_chain(feature).ok


def test_a_waiting_branch_that_does_not_rebase_keeps_its_head_and_the_conflict_is_recorded(tmp_path):
    repo, feature = two_in_review(tmp_path, "write:shared.txt")
    before = repo.head("feat/003-auth-system-WP02")

    assert run_cli("move 003 WP01 --to done --actor human:alice").exit_code == 0

    assert repo.head("feat/003-auth-system-WP02") == before
    entry = AuditEntry.objects.get(feature=feature, transition="WP02:rebase_conflict")
    assert entry.metadata["conflicts"] == ["shared.txt"]
    review = run_cli("review 003 WP02")
    assert "CHANGES REQUESTED" in review.output and "shared.txt" in review.output
