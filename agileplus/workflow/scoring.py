"""A candidate's score card (best of N): the evidence one candidate is judged on, and the order.

The card is built from the review's own checks run on main merged with the candidate's branch
(``review.services.check_branch``: governance, deliverables, the configured tests and commands,
in the review's sandbox) and from the job's record (its cost). The order, best first: every check
passes (required to win), more tests passing (as a share of those run), deliverables present,
a smaller diff, fewer files touched, a lower cost. A candidate that did not finish (failed,
timed out, stopped) gets a card that says so and never wins."""

from __future__ import annotations

from decimal import Decimal

from agileplus.dispatch.costs import money, usage_cost
from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.features.models import WorkPackage
from agileplus.review import services as review_services


def unfinished_card(job: DispatchJob) -> dict:
    """The card of a candidate that ended without a reviewable branch."""
    return {"passed": False, "state": job.state, "reason": job.current_activity or job.state,
            "checks": [], "tests_passed": None, "tests_total": None, "deliverables": False,
            "diff_lines": None, "files": None, "cost_usd": money(usage_cost(job.usage))}


def score_card(wp: WorkPackage, job: DispatchJob, branch: str) -> dict:
    """Run the review's checks on main merged with ``branch`` and build the card."""
    if job.state != JobState.SUCCEEDED:
        return unfinished_card(job)
    checked = review_services.check_branch(wp, job, branch)
    counts = review_services.test_counts(checked.results) or {}
    deliverables = next((r.ok for r in checked.results if r.name == "deliverables"), True)
    return {"passed": bool(checked.results) and all(r.ok for r in checked.results), "state": job.state,
            "reason": "", "checks": [{"name": r.name, "section": r.section, "ok": r.ok} for r in checked.results],
            "tests_passed": counts.get("passed"), "tests_total": counts.get("total"),
            "deliverables": deliverables, "diff_lines": checked.diff_lines, "files": checked.files,
            "cost_usd": money(usage_cost(job.usage))}


def rank_key(card: dict) -> tuple:
    """Sort key, larger is better (see the module's docstring for the order)."""
    total = card.get("tests_total") or 0
    share = (card.get("tests_passed") or 0) / total if total else 0.0
    big = 10**12
    lines = card["diff_lines"] if card.get("diff_lines") is not None else big
    files = card["files"] if card.get("files") is not None else big
    return (bool(card.get("passed")), share, bool(card.get("deliverables")), -lines, -files,
            -Decimal(card.get("cost_usd") or "0"))


def why_best(winner: dict, runner_up: dict | None) -> str:
    """The first criterion that set the winner above the next best, in words."""
    if runner_up is None:
        return "the only candidate that passed every check"
    if not runner_up.get("passed"):
        return "the only candidate that passed every check"
    reasons = ("more tests passing", "its deliverables present", "a smaller diff", "fewer files touched",
               "a lower cost")
    for reason, mine, theirs in zip(reasons, rank_key(winner)[1:], rank_key(runner_up)[1:], strict=True):
        if mine != theirs:
            return reason
    return "the first to finish among equals"
