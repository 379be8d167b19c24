"""`agileplus implement FEATURE --wp WP --fresh` on a real origin, in-process: when a fresh start is
refused (naming the state and the fix, the origin untouched), and what it does when there is nothing
to salvage or when a WP starts over a second time."""

from __future__ import annotations

import json

import pytest

from agileplus.dispatch.models import AgentSession, DispatchJob
from agileplus.dispatch.services import enqueue_job
from agileplus.features.services import transition_wp
from tests.support.cli import run_cli
from tests.support.farm import import_target, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True)]

BRANCH = "feat/003-auth-system-WP01"


@pytest.fixture
def no_doorbell(monkeypatch):
    """Queued jobs stay queued: no worker here."""
    monkeypatch.setattr("agileplus.dispatch.services.send_doorbell", lambda job: None)


@pytest.fixture
def target(tmp_path, no_doorbell):
    """WP01 blocked with earlier work pushed on its branch; WP02 depends on WP01."""
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": ["WP01"]}, behaviour="commit:1")
    feature = import_target(repo)
    old_head = repo.commit_on_branch(BRANCH, "secrets/token.txt", "feat(WP01): add token")
    transition_wp(feature.work_packages.get(code="WP01"), "blocked", actor="system:governance")
    return repo, feature, old_head


def untouched(repo, old_head: str) -> bool:
    return repo.head(BRANCH) == old_head and repo.branches("salvage/") == {}


@pytest.mark.parametrize("job_state", ["queued", "running"])
def test_a_fresh_start_is_refused_while_an_agent_job_is_queued_or_running(target, job_state):
    repo, feature, old_head = target
    wp = feature.work_packages.get(code="WP01")
    transition_wp(wp, "planned", actor="human:alice")
    job = enqueue_job(wp, actor="human:alice")
    DispatchJob.objects.filter(pk=job.pk).update(state=job_state)

    result = run_cli("implement 003 --wp WP01 --fresh --no-wait")

    assert result.exit_code == 3
    assert f"WP01 has an agent job {job.id} ({job_state})" in result.output
    assert f"agileplus jobs cancel {job.id}" in result.output
    assert untouched(repo, old_head)
    assert feature.work_packages.get(code="WP01").fresh_branch == ""


@pytest.mark.parametrize("state, says", [("for_review", "WP01 is for_review"), ("done", "WP01 is done")])
def test_a_fresh_start_is_refused_for_a_wp_in_review_or_done(target, state, says):
    repo, feature, old_head = target
    wp = feature.work_packages.get(code="WP01")
    for step in ("planned", "doing", "for_review", "done")[: ("for_review", "done").index(state) + 3]:
        transition_wp(wp, step, actor="human:alice")

    result = run_cli("implement 003 --wp WP01 --fresh --no-wait")

    assert result.exit_code == 3 and says in result.output
    assert untouched(repo, old_head)


def test_a_fresh_start_of_an_unknown_wp_is_refused_naming_the_known_ones(target):
    repo, _feature, old_head = target

    result = run_cli("implement 003 --wp WP09 --fresh --no-wait")

    assert result.exit_code == 4
    assert "003-auth-system has no work package WP09" in result.output and "known: WP01, WP02" in result.output
    assert untouched(repo, old_head)


def test_a_fresh_start_waits_for_unfinished_dependencies(target):
    repo, feature, old_head = target

    result = run_cli("implement 003 --wp WP02 --fresh --no-wait")

    assert result.exit_code == 3 and "WP02 is blocked by WP01 (blocked)" in result.output
    assert untouched(repo, old_head)
    assert not DispatchJob.objects.filter(feature=feature).exists()


def test_fresh_with_all_is_refused(target):
    result = run_cli("implement 003 --all --fresh")

    assert result.exit_code == 2 and "--fresh starts one WP over, not every ready WP" in result.output


def test_a_fresh_start_with_an_unknown_agent_is_refused_before_the_branch_moves(target):
    repo, _feature, old_head = target

    result = run_cli("implement 003 --wp WP01 --fresh --agent nosuch --no-wait")

    assert result.exit_code == 2 and "agents list" in result.output
    assert untouched(repo, old_head)


def test_a_wp_that_never_pushed_starts_on_a_new_branch_with_nothing_to_salvage(tmp_path, no_doorbell):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:1")
    import_target(repo)

    result = run_cli("implement 003 --wp WP01 --fresh --inline")

    assert result.exit_code == 0, result.output
    assert f"Old work: none on the origin ({BRANCH} was never pushed)" in result.output
    assert repo.branches("salvage/") == {}
    assert repo.subjects(f"{BRANCH}-fresh1") == ["feat(WP01): change 1", "initial"]


def test_a_second_fresh_start_sets_aside_the_first_fresh_branch_and_takes_the_next_name(target):
    repo, feature, old_head = target
    assert run_cli("implement 003 --wp WP01 --fresh --inline").exit_code == 0
    first_fresh = repo.head(f"{BRANCH}-fresh1")
    transition_wp(feature.work_packages.get(code="WP01"), "blocked", actor="human:alice")

    result = run_cli("implement 003 --wp WP01 --fresh --inline")

    assert result.exit_code == 0, result.output
    assert sorted(repo.branches("salvage/").values()) == sorted([old_head, first_fresh])
    assert not repo.has_branch(f"{BRANCH}-fresh1")
    assert repo.subjects(f"{BRANCH}-fresh2") == ["feat(WP01): change 1", "initial"]
    assert feature.work_packages.get(code="WP01").branch_name == f"{BRANCH}-fresh2"


def test_conflict_prediction_reads_a_started_over_wp_from_its_new_branch(tmp_path, no_doorbell):
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []},
                            environment={"AGENT_BEHAVIOUR_WP01": "write:shared.txt",
                                         "AGENT_BEHAVIOUR_WP02": "write:shared.txt"})
    import_target(repo).work_packages.update(deliverables=[])
    assert "for_review" in run_cli("implement 003 --wp WP01 --fresh --inline").output
    assert "for_review" in run_cli("implement 003 --wp WP02 --inline").output

    found = json.loads(run_cli("conflicts 003 --json").output)["conflicts"]

    assert found == [{"a": "WP01", "b": "WP02", "source": "merge_tree", "paths": ["shared.txt"]}]


def test_a_fresh_start_forgets_the_wps_stored_agent_session(target):
    """The old conversation describes the set-aside branch: the next run must not resume it."""
    _repo, feature, _old_head = target
    wp = feature.work_packages.get(code="WP01")
    AgentSession.objects.create(wp=wp, harness="command", session_id="s-old", worker="worker@w1")

    result = run_cli("implement 003 --wp WP01 --fresh --inline")

    assert result.exit_code == 0, result.output
    assert not AgentSession.objects.filter(session_id="s-old").exists()


def attempt_that_ended(wp, state: str, error: str) -> DispatchJob:
    transition_wp(wp, "planned", actor="human:alice")
    job = enqueue_job(wp, actor="human:alice")
    DispatchJob.objects.filter(pk=job.pk).update(state=state, error=error)
    transition_wp(wp, "doing", actor="system:agileplus")
    return job


def fresh_notes(feature) -> list[str]:
    assert run_cli("implement 003 --wp WP01 --fresh --no-wait --json").exit_code == 0
    return DispatchJob.objects.filter(wp__feature=feature).order_by("-queued_at").first().result["notes"]


def test_after_a_timeout_the_fresh_sessions_status_note_says_it_starts_over_not_that_it_timed_out(target):
    _repo, feature, _old_head = target
    wp = feature.work_packages.get(code="WP01")
    job = attempt_that_ended(wp, "timed_out", "Agent timeout (stopped by SIGTERM)")
    transition_wp(wp, "blocked", actor="system:timeout", metadata={"reason": "agent_timeout", "job_id": job.id})

    [note] = fresh_notes(feature)

    assert note.startswith("This is a fresh start from main (")
    assert "on a new branch feat/003-auth-system-WP01-fresh1" in note
    assert "timeout" not in note.lower()


def test_after_a_governance_refusal_the_fresh_sessions_note_names_the_rule_it_must_not_break_again(target):
    _repo, feature, _old_head = target
    wp = feature.work_packages.get(code="WP01")
    job = attempt_that_ended(wp, "succeeded", "governance: secrets/token.txt")
    transition_wp(wp, "blocked", actor="system:governance", metadata={
        "reason": "governance_violation", "job_id": job.id,
        "violations": [{"rule": "forbidden_path", "path": "secrets/token.txt",
                        "detail": "secrets/token.txt is under forbidden secrets/"}]})

    fresh, refused = fresh_notes(feature)

    assert fresh.startswith("This is a fresh start from main")
    assert refused == "Governance refused the earlier work (secrets/token.txt is under forbidden secrets/): " \
                      "do not repeat it."
