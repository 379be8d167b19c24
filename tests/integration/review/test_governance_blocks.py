"""Governance on the result: every commit base..head of an agent's branch is checked; a violation
blocks the WP with the offending commits/paths as audit evidence and nothing of it is merged."""

from __future__ import annotations

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from tests.support.cli import run_cli
from tests.support.farm import import_target, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True)]

VIOLATIONS = {
    "forbidden path": ("write:secrets/token.txt", "forbidden_path", "secrets/token.txt"),
    "file over the size limit": ("big:wp01/blob.bin:200000", "file_size", "wp01/blob.bin"),
    "history rewrite": ("rewrite", "history_rewrite", ""),
    "bad commit message": ("badmsg", "commit_message", ""),
    "symlink escaping with ..": ("symlink:wp01/escape:../../../etc/passwd", "symlink_escape", "wp01/escape"),
    "symlink to an absolute path": ("symlink:wp01/abs:/etc/passwd", "symlink_escape", "wp01/abs"),
    "another WP's domain": ("write:wp02/stolen.txt", "other_wp_domain", "wp02/stolen.txt"),
}


@pytest.fixture
def dispatch(tmp_path):
    def run(behaviour: str):
        repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []}, behaviour=f"commit:1,{behaviour}")
        feature = import_target(repo)
        main_before = repo.head()
        result = run_cli("implement 003 --wp WP01 --inline")
        return repo, feature, main_before, result
    return run


@pytest.mark.parametrize("case", VIOLATIONS, ids=list(VIOLATIONS))
def test_a_violation_blocks_the_wp_with_evidence_and_merges_nothing(dispatch, case):
    behaviour, rule, path = VIOLATIONS[case]
    repo, feature, main_before, result = dispatch(behaviour)

    wp = feature.work_packages.get(code="WP01")
    assert wp.state == "blocked", result.output
    entry = AuditEntry.objects.filter(feature=feature, wp=wp).order_by("-seq").first()
    assert entry.transition == "WP01:doing->blocked"
    assert entry.metadata["reason"] == "governance_violation"
    rules = {(e["rule"], e["path"] or "") for e in entry.evidence_refs}
    assert any(r == rule and (not path or p == path) for r, p in rules), rules
    assert repo.head() == main_before
    assert run_cli("move 003 WP01 --to done --actor human:alice").exit_code != 0
    assert repo.head() == main_before
    assert verify_chain(feature).ok


def test_a_clean_run_passes_governance_and_reaches_review(dispatch):
    repo, feature, main_before, result = dispatch("sleep:0")

    assert feature.work_packages.get(code="WP01").state == "for_review", result.output
    assert DispatchJob.objects.get(feature=feature).state == "succeeded"


def test_the_screen_says_governance_refused_the_work_naming_the_rule_and_the_path(dispatch):
    _repo, _feature, _main, result = dispatch("write:secrets/token.txt")

    assert "Governance refused the agent's work (1 violation; the agent itself exited 0):" in result.output
    assert "  ✗ forbidden_path: secrets/token.txt: " in result.output
    assert "Agent failed" not in result.output and "Exit code" not in result.output


def test_a_branch_that_broke_governance_is_quarantined_off_the_origins_branches(dispatch):
    repo, feature, _main, result = dispatch("write:.kittify/config.yaml")
    branch = feature.work_packages.get(code="WP01").branch_name

    assert not repo.has_branch(branch), result.output
    quarantined = repo.head(f"refs/agileplus/quarantine/{branch}")
    assert ".kittify/config.yaml" in repo.git("show", "--name-only", "--format=", quarantined)
