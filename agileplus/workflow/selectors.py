"""Reading best-of-N rounds: one shape (``round_summary``) for the CLI, the API and the dashboard."""

from __future__ import annotations

from decimal import Decimal

from agileplus.dispatch.costs import money, usage_cost
from agileplus.features.models import WorkPackage
from agileplus.workflow.models import CandidateRound


def rounds_of(wp: WorkPackage) -> list[CandidateRound]:
    return list(CandidateRound.objects.filter(wp=wp).select_related("winner")
                .prefetch_related("candidates__job"))


def latest_round(wp: WorkPackage) -> CandidateRound | None:
    return CandidateRound.objects.filter(wp=wp).select_related("winner").first()


def round_summary(rnd: CandidateRound) -> dict:
    """A round with every candidate's score card, its rank and what became of it."""
    candidates = list(rnd.candidates.select_related("job").order_by("index"))
    winner = next((c for c in candidates if c.job_id == rnd.winner_id), None)
    spent = {c.index: usage_cost(c.job.usage) for c in candidates}
    winner_cost = spent.get(winner.index, Decimal(0)) if winner else Decimal(0)
    return {
        "round": rnd.pk, "feature": rnd.wp.feature.slug, "wp": rnd.wp.code, "state": rnd.state,
        "quorum": rnd.quorum, "grace_seconds": rnd.grace_seconds, "requested_by": rnd.requested_by,
        "created_at": rnd.created_at, "decided_at": rnd.decided_at, "note": rnd.note,
        "winner": winner.index if winner else None,
        "why": rnd.why,
        "cost": {"winner_usd": money(winner_cost), "others_usd": money(sum(spent.values(), Decimal(0)) - winner_cost)},
        "candidates": [{
            "index": c.index, "job_id": c.job_id, "harness": c.harness, "branch": c.branch,
            "job_state": c.job.state, "rank": c.rank, "outcome": c.outcome or ("won" if c is winner else ""),
            "salvage_ref": "" if c.salvage_ref == "-" else c.salvage_ref, "score": c.score,
            "cost_usd": money(spent[c.index]),
        } for c in candidates],
    }



def candidate_spend(feature_id: int | None = None) -> list[dict]:
    """Per WP that ran candidates: the spend on the candidates that won and on the others
    (``costs`` shows it under its ledger)."""
    rounds = CandidateRound.objects.select_related("wp__feature").prefetch_related("candidates__job")
    if feature_id is not None:
        rounds = rounds.filter(feature_id=feature_id)
    spend: dict[tuple[str, str], dict] = {}
    for rnd in rounds:
        row = spend.setdefault((rnd.wp.feature.slug, rnd.wp.code), {"feature": rnd.wp.feature.slug,
                                                                     "wp": rnd.wp.code, "winner": Decimal(0),
                                                                     "others": Decimal(0), "candidates": 0})
        for candidate in rnd.candidates.all():
            row["winner" if candidate.job_id == rnd.winner_id else "others"] += usage_cost(candidate.job.usage)
            row["candidates"] += 1
    return [{**row, "winner": money(row["winner"]), "others": money(row["others"])}
            for _, row in sorted(spend.items())]
