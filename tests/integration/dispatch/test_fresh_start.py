"""`implement --fresh` end to end, with a real worker process and a real git origin: an agent commits
a forbidden path, governance blocks the WP; its branch can never pass (rewriting it is refused), so
the user starts it over: the old branch is kept on the origin under salvage/, a new branch starts
from the current main, the next agent run is clean, the WP ships and the audit chain verifies."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.events.models import Event
from tests.support.farm import ROOT, import_target, job_env, make_target_repo, running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.database]

OLD_BRANCH = "feat/003-auth-system-WP01"
NEW_BRANCH = "feat/003-auth-system-WP01-fresh1"


def agileplus(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def behave_from_now_on(repo, behaviour: str) -> str:
    """What a user does after a bad run: fix the agent's instructions on main and import them again.
    Returns main's new head (main moved since the first run's branch was made)."""
    config_file = repo.path / ".kittify" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["agent"]["environment"]["AGENT_BEHAVIOUR"] = behaviour
    config_file.write_text(yaml.safe_dump(config))
    repo.git("commit", "-qam", "agent: stay inside wp01/")
    import_target(repo)
    return repo.head()


@pytest.fixture
def blocked_then_fresh(tmp_path):
    """WP01's agent commits secrets/token.txt (forbidden) → blocked; then `implement --fresh` with
    the agent told to behave, and `review --apply`, all against one real worker."""
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:1,write:secrets/token.txt")
    feature = import_target(repo)
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))
    with running_workers(tmp_path, 1, broker_url=None):
        first = agileplus("implement", "003", "--wp", "WP01", "--wait", env=env)
        old_head = repo.head(f"refs/agileplus/quarantine/{OLD_BRANCH}")  # off the branches: it broke governance
        main_now = behave_from_now_on(repo, "commit:2")
        fresh = agileplus("implement", "003", "--wp", "WP01", "--fresh", "--wait", "--actor", "human:alice", env=env)
        review = agileplus("review", "003", "WP01", "--apply", env=env)
    return {"repo": repo, "feature": feature, "first": first, "fresh": fresh, "review": review,
            "old_head": old_head, "main_now": main_now}


def test_a_forbidden_path_blocks_the_wp_and_the_screen_offers_a_fresh_start(blocked_then_fresh):
    first, feature = blocked_then_fresh["first"], blocked_then_fresh["feature"]

    assert first.returncode == 1, first.stdout + first.stderr
    assert "secrets/token.txt is under forbidden secrets/" in first.stdout
    assert "agileplus implement 003-auth-system --wp WP01 --agent command --timeout 120 --fresh" in first.stdout
    entry = AuditEntry.objects.get(feature=feature, transition="WP01:doing->blocked")
    assert entry.metadata["reason"] == "governance_violation"


def test_the_old_branch_is_kept_on_the_origin_under_salvage_and_the_output_says_where(blocked_then_fresh):
    repo, fresh, old_head = blocked_then_fresh["repo"], blocked_then_fresh["fresh"], blocked_then_fresh["old_head"]

    salvaged = repo.branches("salvage/")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert len(salvaged) == 1
    [(name, sha)] = salvaged.items()
    assert re.fullmatch(r"salvage/003-auth-system-WP01-\d{8}-\d{6}", name)
    assert sha == old_head
    assert not repo.has_branch(OLD_BRANCH)  # moved, not copied: one place to find the old work
    assert f"Old work: {OLD_BRANCH} ({old_head[:7]}) is kept on the origin as {name}" in fresh.stdout
    assert f"New branch: {NEW_BRANCH} from main" in fresh.stdout


def test_the_new_branch_starts_from_the_current_main_without_the_old_commits(blocked_then_fresh):
    repo, main_now = blocked_then_fresh["repo"], blocked_then_fresh["main_now"]
    job = DispatchJob.objects.filter(wp__code="WP01").order_by("-queued_at").first()

    assert job.branch == NEW_BRANCH and job.base_commit == main_now
    assert job.result["fresh_start"]["salvaged_sha"] == blocked_then_fresh["old_head"]
    assert "This is a fresh start from main" in job.prompt
    files = repo.git("diff", "--name-only", f"{main_now}...{job.result['head']}").splitlines()
    assert sorted(files) == ["wp01/file_1.txt", "wp01/file_2.txt"]


def test_the_clean_run_passes_review_and_ships_to_main(blocked_then_fresh):
    repo, feature, review = blocked_then_fresh["repo"], blocked_then_fresh["feature"], blocked_then_fresh["review"]

    assert review.returncode == 0, review.stdout + review.stderr
    assert feature.work_packages.get(code="WP01").state == "done"
    main_files = repo.git("ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"wp01/file_1.txt", "wp01/file_2.txt"} <= set(main_files)
    assert "secrets/token.txt" not in main_files
    old_in_main = subprocess.run(["git", "-C", str(repo.path), "merge-base", "--is-ancestor",
                                  blocked_then_fresh["old_head"], "main"], capture_output=True)
    assert old_in_main.returncode == 1


def test_the_fresh_start_is_in_the_audit_chain_and_the_events_and_the_chain_verifies(blocked_then_fresh):
    feature, old_head = blocked_then_fresh["feature"], blocked_then_fresh["old_head"]

    transitions = list(AuditEntry.objects.filter(feature=feature, wp__code="WP01").order_by("seq")
                       .values_list("transition", flat=True))
    start = AuditEntry.objects.get(feature=feature, transition="WP01:fresh_start")
    event = Event.objects.get(subject="agileplus.feature.003-auth-system.wp.WP01.fresh_start")

    assert transitions[transitions.index("WP01:doing->blocked"):] == [
        "WP01:doing->blocked", "WP01:fresh_start", "WP01:blocked->planned", "WP01:planned->doing",
        "WP01:doing->for_review", *transitions[transitions.index("WP01:doing->for_review") + 1:]]
    assert transitions[-1] == "WP01:for_review->done"
    assert start.actor == "human:alice"
    assert start.metadata["old_branch"] == OLD_BRANCH and start.metadata["salvaged_sha"] == old_head
    assert start.evidence_refs == [{"commit": old_head, "ref": f"refs/heads/{start.metadata['salvage_branch']}"}]
    assert event.payload["salvage_branch"] == start.metadata["salvage_branch"]
    assert verify_chain(feature).ok
