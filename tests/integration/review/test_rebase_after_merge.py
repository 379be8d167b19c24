"""After a merge, branches waiting for review that touch a merged path are rebased onto the new
main; one that cannot be rebased keeps its head and its conflict is recorded for the gate; one
that touches none of the merged paths is left as the agent pushed it."""

from __future__ import annotations

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from tests.support.cli import run_cli
from tests.support.farm import import_target, make_target_repo, outbox_dir

pytestmark = [pytest.mark.django_db(transaction=True)]


SHARED = "".join(f"line {i}\n" for i in range(1, 21))


def two_in_review(tmp_path, behaviour: str = "commit:1", **repo_options):
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []}, behaviour=behaviour, **repo_options)
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    for code in ("WP01", "WP02"):
        assert "for_review" in run_cli(f"implement 003 --wp {code} --inline").output
    return repo, feature


def edit_of_shared(tmp_path, wp: str, line: int) -> str:
    """An ``apply:`` behaviour that rewrites one line of shared.txt (different lines merge cleanly)."""
    folder = outbox_dir(tmp_path, f"edit-{wp}")  # the agent reads it from inside its sandbox
    (folder / "shared.txt").write_text(SHARED.replace(f"line {line}\n", f"line {line} by {wp}\n"))
    return f"apply:{folder}"


def two_editing_shared_lines(tmp_path):
    """WP01 and WP02 in review, each having rewritten its own line of shared.txt (1 and 20)."""
    return two_in_review(tmp_path, files={"shared.txt": SHARED}, environment={
        "AGENT_BEHAVIOUR_WP01": edit_of_shared(tmp_path, "WP01", 1),
        "AGENT_BEHAVIOUR_WP02": edit_of_shared(tmp_path, "WP02", 20)})


def wp01_merged(repo) -> tuple[str, str]:
    """Move WP01 to done (its merge); WP02's branch head before and after it."""
    before = repo.head("feat/003-auth-system-WP02")
    assert run_cli("move 003 WP01 --to done --actor human:alice").exit_code == 0
    return before, repo.head("feat/003-auth-system-WP02")


def test_a_waiting_branch_touching_a_merged_path_is_rebased_onto_main_and_then_merges_cleanly(tmp_path):
    repo, feature = two_editing_shared_lines(tmp_path)

    before, after = wp01_merged(repo)

    assert after != before
    assert repo.git("merge-base", "--is-ancestor", "main", after) == ""  # main is now its base
    entry = AuditEntry.objects.get(feature=feature, transition="WP02:rebased")
    assert entry.metadata["old_head"] == before and entry.metadata["new_head"] == after
    assert DispatchJob.objects.get(wp__code="WP02", feature=feature).base_commit == repo.head("main")
    assert "APPROVED" in run_cli("review 003 WP02 --apply --inline").output  # governance measures from the new base
    assert feature.work_packages.get(code="WP02").state == "done"
    assert repo.git("show", "main:shared.txt").splitlines()[::19] == ["line 1 by WP01", "line 20 by WP02"]
    assert verify_chain(feature).ok


def test_a_waiting_branch_touching_none_of_the_merged_paths_is_left_as_pushed_and_still_merges(tmp_path):
    repo, feature = two_in_review(tmp_path, "commit:1")

    before, after = wp01_merged(repo)

    assert after == before
    assert not AuditEntry.objects.filter(feature=feature, transition__startswith="WP02:rebase").exists()
    assert "APPROVED" in run_cli("review 003 WP02 --apply --inline").output
    assert repo.git("ls-tree", "--name-only", "-r", "main").split().count("wp02/file_1.txt") == 1
    assert verify_chain(feature).ok


def test_a_waiting_branch_that_does_not_rebase_keeps_its_head_and_the_conflict_is_recorded(tmp_path):
    repo, feature = two_in_review(tmp_path, "write:shared.txt")

    before, after = wp01_merged(repo)

    assert after == before
    entry = AuditEntry.objects.get(feature=feature, transition="WP02:rebase_conflict")
    assert entry.metadata["conflicts"] == ["shared.txt"]
    review = run_cli("review 003 WP02 --inline")
    assert "CHANGES REQUESTED" in review.output and "shared.txt" in review.output
