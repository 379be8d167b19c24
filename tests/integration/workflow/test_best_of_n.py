"""Best of N: several candidates of one WP, each on its own branch, scored by the review's checks on
main merged with it; the best one goes on to review, the others are set aside under salvage/.

The candidates are scripted agents of known quality (``AGENT_BEHAVIOUR_C<n>``): one breaks the
project's tests, one passes with a large diff, one passes with a small diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.dispatch.services import enqueue_job
from agileplus.events.models import Event
from agileplus.features.models import WorkPackage
from agileplus.workflow.models import Candidate, CandidateRound
from tests.integration.api.conftest import client_for
from tests.support.cli import run_cli
from tests.support.farm import CALC_PROJECT, PYTEST_CHECK, import_target, make_target_repo, outbox_dir

pytestmark = [pytest.mark.django_db(transaction=True)]

REVIEW = {"checks": [{"name": "deliverables"}, PYTEST_CHECK, {"name": "governance"}, {"name": "commit_convention"}]}
BROKEN = {"calc/core.py": "def add(a: int, b: int) -> int:\n    return a - b\n"}
LARGE = {"calc/extra.py": "".join(f"def f{i}(x: int) -> int:\n    return x + {i}\n\n\n" for i in range(60))}
OWNED = {"WP01": ["wp01/", "calc/", "tests/"]}


def change(tmp_path: Path, name: str, files: dict[str, str]) -> str:
    """A behaviour committing ``wp01/file_1.txt`` (the deliverable) and then ``files``."""
    source = outbox_dir(tmp_path, name)  # the agent reads it from inside its sandbox
    for path, text in files.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(text)
    return f"commit:1,apply:{source}"


def three_candidates(tmp_path: Path, **agent):
    behaviours = {"AGENT_BEHAVIOUR_C1": change(tmp_path, "broken", BROKEN),
                  "AGENT_BEHAVIOUR_C2": change(tmp_path, "large", LARGE),
                  "AGENT_BEHAVIOUR_C3": "commit:1"}
    repo = make_target_repo(tmp_path, wps={"WP01": []}, files=CALC_PROJECT, review=REVIEW, owned=OWNED,
                            environment=behaviours, agent=agent or None)
    return repo, import_target(repo)


def test_the_candidate_passing_every_check_with_the_smallest_diff_is_chosen_and_goes_to_review(tmp_path):
    repo, feature = three_candidates(tmp_path)

    result = run_cli("implement 003 --wp WP01 --candidates 3 --quorum all --inline")

    assert result.exit_code == 0, result.output
    rnd = CandidateRound.objects.get(wp__feature=feature)
    assert (rnd.state, rnd.winner.result["candidate"]["index"]) == ("chosen", 3)
    assert "c3 chosen, a smaller diff" in result.output
    wp = WorkPackage.objects.get(feature=feature, code="WP01")
    assert wp.state == "for_review"
    # the winner's commits are the WP's branch: review and the merge read it as for any WP
    assert repo.head("feat/003-auth-system-WP01") == rnd.winner.result["head"]
    assert DispatchJob.objects.get(pk=rnd.winner_id).branch == "feat/003-auth-system-WP01"


def test_every_candidate_has_a_score_card_rank_and_outcome(tmp_path):
    _, feature = three_candidates(tmp_path)

    run_cli("implement 003 --wp WP01 --candidates 3 --quorum all --inline")

    cards = {c.index: c for c in Candidate.objects.filter(round__wp__feature=feature)}
    assert cards[1].score["passed"] is False
    assert cards[1].score["tests_total"] == 1 and cards[1].score["tests_passed"] == 0
    assert cards[2].score["passed"] and cards[3].score["passed"]
    assert cards[2].score["diff_lines"] > cards[3].score["diff_lines"]
    assert [cards[i].rank for i in (1, 2, 3)] == [3, 2, 1]
    assert [cards[i].outcome for i in (1, 2, 3)] == ["failed", "lost", "won"]


def test_the_others_branches_are_set_aside_under_salvage(tmp_path):
    repo, _ = three_candidates(tmp_path)

    run_cli("implement 003 --wp WP01 --candidates 3 --quorum all --inline")

    assert set(repo.branches("salvage/")) == {"salvage/feat/003-auth-system-WP01-c1",
                                              "salvage/feat/003-auth-system-WP01-c2"}
    assert not repo.has_branch("feat/003-auth-system-WP01-c1")


def test_the_audit_chain_records_the_candidates_the_scores_and_the_choice(tmp_path):
    _, feature = three_candidates(tmp_path)

    run_cli("implement 003 --wp WP01 --candidates 3 --quorum all --inline")

    transitions = list(AuditEntry.objects.filter(feature=feature).order_by("seq").values_list("transition", flat=True))
    assert "WP01:candidates_started" in transitions
    assert transitions.count("WP01:candidate_scored") == 3
    chosen = AuditEntry.objects.get(feature=feature, transition="WP01:candidate_chosen")
    assert chosen.metadata["winner"] == 3 and set(chosen.metadata["cards"]) == {"1", "2", "3"}
    assert verify_chain(feature).ok
    subjects = set(Event.objects.filter(subject__contains=".candidate.").values_list("subject", flat=True))
    assert subjects == {f"agileplus.agent.wp.WP01.candidate.{k}" for k in ("started", "scored", "chosen")}


def test_first_pass_stops_the_remaining_candidates(tmp_path):
    _, feature = three_candidates(tmp_path)

    result = run_cli("implement 003 --wp WP01 --candidates 3 --quorum first_pass --inline")

    assert result.exit_code == 0, result.output
    rnd = CandidateRound.objects.get(wp__feature=feature)
    cards = {c.index: c for c in rnd.candidates.select_related("job")}
    assert rnd.winner_id == cards[2].job_id  # the first to pass, large diff and all
    assert (cards[3].job.state, cards[3].outcome) == ("cancelled", "stopped")


def test_no_candidate_passing_blocks_the_wp_for_a_person(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, files=CALC_PROJECT, review=REVIEW, owned=OWNED,
                            environment={"AGENT_BEHAVIOUR": change(tmp_path, "broken", BROKEN)})
    feature = import_target(repo)

    result = run_cli("implement 003 --wp WP01 --candidates 2 --inline")

    assert result.exit_code == 1
    assert "none passed every check" in result.output
    assert WorkPackage.objects.get(feature=feature, code="WP01").state == "blocked"


def test_the_candidates_command_shows_the_cards_as_json(tmp_path):
    three_candidates(tmp_path)
    run_cli("implement 003 --wp WP01 --candidates 3 --quorum all --inline")

    shown = json.loads(run_cli("candidates 003 WP01 --json").output)

    assert shown["winner"] == 3 and shown["why"] == "a smaller diff"
    assert [c["outcome"] for c in shown["candidates"]] == ["failed", "lost", "won"]
    assert set(shown["cost"]) == {"winner_usd", "others_usd"}


@pytest.mark.parametrize(("command", "field"), [
    ("implement 003 --wp WP01 --candidates 99", "--candidates"),
    ("implement 003 --wp WP01 --candidates 1", "--candidates"),
    ("implement 003 --wp WP01 --candidates 2 --agents command,no-such-agent", "--agents"),
])
def test_a_bad_candidate_request_is_refused_naming_the_field(tmp_path, command, field):
    _, feature = three_candidates(tmp_path)

    result = run_cli(command)

    assert result.exit_code != 0
    assert field in result.output and "Traceback" not in result.output
    assert not DispatchJob.objects.filter(feature=feature).exists()


def test_candidates_for_a_wp_already_running_are_refused(tmp_path):
    _, feature = three_candidates(tmp_path)
    enqueue_job(feature.work_packages.get(code="WP01"), actor="human:alice", send=False)

    result = run_cli("implement 003 --wp WP01 --candidates 2 --no-wait")

    assert result.exit_code != 0 and "WP01" in result.output
    assert DispatchJob.objects.filter(feature=feature).count() == 1


def test_no_candidate_starts_that_the_wps_budget_cannot_pay_for(tmp_path):
    _, feature = three_candidates(tmp_path, budget={"job_usd": 1.0, "wp_usd": 2.5})

    result = run_cli("implement 003 --wp WP01 --candidates 3 --no-wait")

    assert result.exit_code == 0, result.output
    assert DispatchJob.objects.filter(feature=feature).count() == 2
    assert "1 of 3 not started: the WP's budget" in result.output


def test_the_api_queues_candidates_and_answers_their_cards(tmp_path, monkeypatch):
    monkeypatch.setattr("agileplus.dispatch.services.send_doorbell", lambda job: None)  # no worker here
    three_candidates(tmp_path)
    client = client_for("human")

    queued = client.post("/api/features/003-auth-system/implement", {"wp": "WP01", "candidates": 3}, format="json")
    shown = client.get("/api/features/003-auth-system/wps/WP01/candidates")

    assert queued.status_code == 202, queued.content
    assert len(queued.json()["jobs"]) == 3
    assert shown.status_code == 200
    assert [c["branch"] for c in shown.json()["candidates"]] == [
        f"feat/003-auth-system-WP01-c{i}" for i in (1, 2, 3)]


def test_the_api_refuses_candidates_for_several_wps_naming_the_field(tmp_path):
    three_candidates(tmp_path)

    answer = client_for("human").post("/api/features/003-auth-system/implement",
                                      {"wps": ["WP01", "WP02"], "candidates": 3}, format="json")

    assert answer.status_code == 400
    assert "candidates" in answer.json()["error"]["field"] or "candidates" in str(answer.json())


def test_costs_split_a_wps_spend_into_the_winner_and_the_others(tmp_path):
    _, feature = three_candidates(tmp_path)
    run_cli("implement 003 --wp WP01 --candidates 3 --quorum all --inline")
    for index, cost in ((1, "0.5"), (2, "0.25"), (3, "0.125")):
        DispatchJob.objects.filter(feature=feature, result__candidate__index=index).update(
            usage={"input_tokens": 10, "output_tokens": 10, "cost_usd": cost})

    shown = run_cli("costs 003")
    ledger = json.loads(run_cli("costs 003 --json").output)

    assert "003-auth-system WP01: 3 candidates, $0.1250 on the winner, $0.7500 on the others" in shown.output
    assert ledger["candidates"] == [{"feature": "003-auth-system", "wp": "WP01", "candidates": 3,
                                     "winner": "0.1250", "others": "0.7500"}]


def test_the_review_report_of_the_chosen_candidate_shows_the_score_cards(tmp_path):
    three_candidates(tmp_path)
    run_cli("implement 003 --wp WP01 --candidates 3 --quorum all --inline")

    reviewed = run_cli("review 003 WP01 --inline")

    assert "Result: APPROVED ✓" in reviewed.output, reviewed.output
    assert "Candidates for WP01 (round" in reviewed.output and "c3 chosen, a smaller diff" in reviewed.output


def test_a_wps_task_file_asks_for_its_candidates(tmp_path):
    repo, _ = three_candidates(tmp_path)
    task = repo.path / "kitty-specs" / "003-auth-system" / "tasks" / "WP01.md"
    task.write_text(task.read_text().replace("lane: planned", "lane: planned\ncandidates: 2", 1))
    repo.git("commit", "-qam", "WP01: two candidates")
    feature = import_target(repo)

    result = run_cli("implement 003 --wp WP01 --quorum all --inline")

    assert result.exit_code == 0, result.output
    assert CandidateRound.objects.get(wp__feature=feature).candidates.count() == 2


def test_earlier_work_on_the_wps_branch_is_set_aside_not_overwritten_by_the_winner(tmp_path):
    repo, feature = three_candidates(tmp_path)
    earlier = repo.commit_on_branch("feat/003-auth-system-WP01", "wp01/old.txt", "feat(WP01): earlier work")

    run_cli("implement 003 --wp WP01 --candidates 3 --quorum all --inline")

    rnd = CandidateRound.objects.get(wp__feature=feature)
    assert repo.branches("salvage/")[f"salvage/feat/003-auth-system-WP01-before-round-{rnd.pk}"] == earlier
    assert repo.head("feat/003-auth-system-WP01") == rnd.winner.result["head"]
