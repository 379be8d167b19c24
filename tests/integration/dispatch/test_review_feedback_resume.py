"""CHANGES REQUESTED goes back to the agent's own session: the real Claude Code session that did
the work is resumed with the review's findings, twice, until the review approves and the WP
merges (auto-dispatch: `implement --all`), bounded by ``max_review_cycles``."""

from __future__ import annotations

import json

import pytest

from agileplus.dispatch import cost_reports
from agileplus.dispatch.models import DispatchJob, ModelCall
from agileplus.review.models import ReviewReport
from harnesses.check import QUIET_ENVIRONMENT
from harnesses.endpoints import Run, Say, Turn, Write
from harnesses.endpoints.anthropic import AnthropicEndpoint
from tests.integration.dispatch.test_real_clis import agileplus, log_text
from tests.support.farm import import_target, make_target_repo, running_workers, wait_until
from tests.support.real_clis import worker_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FIXES = {"name": "fixes", "timeout": 30, "command": "for f in fix_1 fix_2; do test -f wp01/$f.txt || "
         "{ echo \"missing wp01/$f.txt\"; exit 1; }; done"}


ONE_FIX = {**FIXES, "command": FIXES["command"].replace(" fix_2", "")}


def round_of(name: str) -> list[Turn]:
    path = f"wp01/{name}.txt"
    return [Turn([Say(f"Adding {path}."), Write(path, f"{name}\n")]),
            Turn([Run(f"git add {path} && git commit -q -m 'feat(WP01): add {name}'")]),
            Turn([Say(f"Committed {path}.")])]


def review_rounds(tmp_path, endpoint, check: dict, **agent) -> tuple:
    """WP01 dispatched with ``implement --all`` to Claude Code on one worker (with beat), reviewed by
    governance and ``check`` until it is done or blocked. Returns the repo, the feature, its jobs."""
    worker_env = worker_environment("claude-code", endpoint, tmp_path / "home")
    repo = make_target_repo(tmp_path, wps={"WP01": []}, environment=QUIET_ENVIRONMENT,
                            agent={"harness": "claude-code", **agent},
                            review={"checks": [{"name": "governance"}, check]})
    feature = import_target(repo)
    with running_workers(tmp_path, 1, broker_url=None, with_beat=True, harnesses="claude-code", **worker_env):
        started = agileplus(tmp_path, "implement", "003", "--all", "--no-wait", "--actor", "human:alice")
        assert started.returncode == 0, started.stdout + started.stderr
        wait_until(lambda: feature.work_packages.get(code="WP01").state in ("done", "blocked"), timeout=300,
                   what="WP01 done after its review rounds")
    return repo, feature, list(DispatchJob.objects.filter(feature=feature).order_by("queued_at"))


def test_changes_requested_twice_resume_the_same_claude_session_until_approved(tmp_path):
    script = round_of("file_1") + round_of("fix_1") + round_of("fix_2")
    with AnthropicEndpoint(script) as endpoint:
        repo, feature, jobs = review_rounds(tmp_path, endpoint, FIXES, max_review_cycles=3)
        first_requests = [r for r in endpoint.agent_requests if r.consumed_step in (3, 6)]

    assert feature.work_packages.get(code="WP01").state == "done", "\n---\n".join(log_text(j) for j in jobs)
    assert [r.approved for r in ReviewReport.objects.filter(wp__feature=feature).order_by("id")] == [False, False, True]
    # one session across the three jobs: the second and third resumed the first's
    sessions = {j.session_id for j in jobs}
    assert len(jobs) == 3 and len(sessions) == 1, "\n".join(
        f"{j.id} {j.session_id} resumed {j.manifest.get('resumed_from_session')}\n{log_text(j)[:1500]}" for j in jobs)
    assert [j.manifest.get("resumed_from_session") for j in jobs] == [None, *[jobs[0].session_id] * 2]
    # each resumed session was told what the review found, after the turns it had already taken
    for request, missing in zip(first_requests, ["missing wp01/fix_1.txt", "missing wp01/fix_2.txt"], strict=True):
        text = json.dumps(request.body["messages"])
        assert "Changes requested by the automated review" in text and missing in text
        assert "Adding wp01/file_1.txt." in text
    assert repo.git("show", "main:wp01/fix_2.txt") == "fix_2"


def test_the_review_rounds_are_billed_as_the_provider_billed_them_and_the_rejected_rounds_are_wasted(tmp_path):
    script = round_of("file_1") + round_of("fix_1")
    with AnthropicEndpoint(script) as endpoint:
        _, feature, jobs = review_rounds(tmp_path, endpoint, ONE_FIX, max_review_cycles=2,
                                         prices={"*": {"input": "3", "output": "15"}})
        billed = dict(endpoint.billed)
    calls = ModelCall.objects.filter(feature=feature).exclude(outcome="refused")
    spent_on = cost_reports.outcomes(feature_id=feature.pk)

    assert feature.work_packages.get(code="WP01").state == "done", "\n---\n".join(log_text(j) for j in jobs)
    # every call of both rounds is in the ledger, as the provider billed it, each on its own job
    assert (sum(c.input_tokens for c in calls), sum(c.output_tokens for c in calls), calls.count()) == (
        billed["input_tokens"], billed["output_tokens"], billed["calls"])
    assert [int(j.usage["input_tokens"]) for j in jobs] == [
        sum(c.input_tokens for c in calls if c.job_id == j.id) for j in jobs]
    # the round the review rejected is wasted; the merged WP cost both rounds
    assert [a.fate for a in cost_reports.attempts(feature_id=feature.pk)] == ["rejected", "merged"]
    assert spent_on["wasted_by_fate"] == {"rejected": 1}
    assert spent_on["wasted_cost_usd"] == str(sum(c.cost_usd for c in calls if c.job_id == jobs[0].id).normalize())
    assert spent_on["cost_per_merged_wp_usd"] == str(sum(c.cost_usd for c in calls).normalize())
