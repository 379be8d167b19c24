"""The WP page shows a best-of-N round: each candidate's score card, rank and outcome, and the choice."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agileplus.dispatch.models import DispatchJob
from agileplus.workflow.models import Candidate, CandidateRound
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db


def candidate(rnd, index: int, *, passed: bool, outcome: str, rank: int) -> Candidate:
    wp = rnd.wp
    job = DispatchJob.objects.create(id=f"job_c{index}", feature=wp.feature, wp=wp, harness="codex",
                                     requested_by="human:x", state="succeeded",
                                     usage={"input_tokens": 10, "output_tokens": 5, "cost_usd": "0.5"})
    return Candidate.objects.create(round=rnd, index=index, job=job, branch=f"feat/x-WP01-c{index}", harness="codex",
                                    rank=rank, outcome=outcome, score={
                                        "passed": passed, "state": "succeeded", "reason": "", "deliverables": True,
                                        "checks": [{"name": "tests", "section": "Test Quality", "ok": passed}],
                                        "tests_passed": 3 if passed else 1, "tests_total": 3, "diff_lines": 10 * index,
                                        "files": index, "cost_usd": "0.5000"})


def test_the_wp_page_shows_every_candidates_card_and_the_choice(browser):
    feature, (wp,) = make_feature_with_wps(1)
    rnd = CandidateRound.objects.create(feature=feature, wp=wp, requested_by="human:x", state="chosen",
                                        why="a smaller diff")
    candidate(rnd, 1, passed=False, outcome="failed", rank=2)
    rnd.winner = candidate(rnd, 2, passed=True, outcome="won", rank=1).job
    rnd.save()

    page = browser.get(f"/features/{feature.slug}/wps/WP01").content.decode()

    assert "c2 chosen: a smaller diff" in page
    assert 'data-candidate="1" data-outcome="failed"' in page and 'data-candidate="2" data-outcome="won"' in page
    assert "1/3" in page and "3/3" in page
    assert "$0.5000 on the winner, $0.5000 on the others" in page


def test_the_timeline_gives_each_candidate_a_row_beside_the_workers(browser):
    feature, (wp,) = make_feature_with_wps(1)
    rnd = CandidateRound.objects.create(feature=feature, wp=wp, requested_by="human:x", state="chosen")
    for index, outcome in ((1, "lost"), (2, "won")):
        c = candidate(rnd, index, passed=True, outcome=outcome, rank=3 - index)
        DispatchJob.objects.filter(pk=c.job_id).update(worker=f"w{index}", claimed_at=timezone.now(),
                                                       finished_at=timezone.now())

    page = browser.get("/farm/timeline").content.decode()

    assert page.count('data-kind="candidate"') == 2 and page.count('data-kind="job"') == 2
    assert 'data-outcome="won"' in page and f"{feature.slug[:3]} WP01 c2" in page
