"""What the spend bought: the cost of each attempt and what became of it, the cost per merged WP,
and the wasted attempts (spend of attempts that did not lead to a merge).

An attempt's cost is what the gateway's ledger billed it (``ModelCall`` rows of that attempt);
a job the gateway did not meter counts its usage on its last attempt. What became of it:

- ``merged``: the last job of a WP that is done (merged) that succeeded, its last attempt;
- ``parked``: an earlier attempt that waited for a rate limit (its session went on): not wasted;
- ``running`` / ``pending``: not over yet, or its WP is in review or the merge queue;
- wasted: ``killed`` (an earlier attempt lost with its worker), ``timed_out``, ``failed``,
  ``cancelled``, ``rejected`` (its WP needed another job after it), ``ejected`` (the merge
  queue ejected its WP after it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum

from agileplus.dispatch import costs
from agileplus.dispatch.costs import ZERO, LedgerRow, natural_key, usage_cost, usage_priced
from agileplus.dispatch.models import DispatchJob, JobLogLine, JobState, ModelCall
from agileplus.features.lifecycles import WPState
from agileplus.review.models import MergeQueueEntry

WASTED = ("killed", "timed_out", "failed", "cancelled", "rejected", "ejected")
GROUPINGS = (*costs.GROUPINGS, "attempt")


def ledger(*, feature_id: int | None = None, by: str = "agent") -> list[LedgerRow]:
    """``costs.ledger``, and by ``attempt``: one row per attempt, its key saying what became of it."""
    if by == "attempt":
        return [a.row() for a in attempts(feature_id=feature_id)]
    return costs.ledger(feature_id=feature_id, by=by)


@dataclass
class Attempt:
    feature: str
    wp: str
    job_id: str
    attempt: int
    harness: str
    fate: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: Decimal = ZERO
    unpriced: int = 0

    @property
    def wasted(self) -> bool:
        return self.fate in WASTED

    def row(self) -> LedgerRow:
        key = f"{self.feature} {self.wp} {self.job_id} #{self.attempt} {self.fate}"
        return LedgerRow(key, 1, self.input_tokens, self.output_tokens, self.cached_input_tokens, self.cost_usd,
                         self.unpriced)


def attempts(*, feature_id: int | None = None) -> list[Attempt]:
    """Every attempt of every job (of the feature), in WP order, with its cost and fate."""
    jobs = DispatchJob.objects.select_related("wp", "feature").order_by("queued_at")
    if feature_id is not None:
        jobs = jobs.filter(feature_id=feature_id)
    jobs = list(jobs.only("id", "harness", "state", "attempt", "usage", "queued_at", "finished_at",
                          "wp__code", "wp__state", "feature__slug"))
    ids = [job.id for job in jobs]
    billed = {(c["job_id"], c["attempt"]): c for c in ModelCall.objects.filter(job_id__in=ids).exclude(
        outcome="refused").values("job_id", "attempt").annotate(
        calls=Count("id"), input=Sum("input_tokens"), output=Sum("output_tokens"), cached=Sum("cached_input_tokens"),
        cost=Sum("cost_usd"), unpriced=Count("id", filter=Q(cost_usd__isnull=True) & (
            Q(input_tokens__gt=0) | Q(output_tokens__gt=0))))}
    parked = set(JobLogLine.objects.filter(job_id__in=ids, line__startswith="Rate limited:")
                 .values_list("job_id", "attempt"))
    fates = _final_fates(jobs)
    found = []
    for job in jobs:
        metered = any(key[0] == job.id for key in billed)
        for number in range(1, max(job.attempt, 1) + 1):
            last = number == max(job.attempt, 1)
            fate = fates[job.id] if last else ("parked" if (job.id, number) in parked else "killed")
            attempt = Attempt(job.feature.slug, job.wp.code, job.id, number, job.harness, fate)
            if (c := billed.get((job.id, number))) is not None:
                attempt.calls, attempt.unpriced = c["calls"], c["unpriced"]
                attempt.input_tokens, attempt.output_tokens = c["input"] or 0, c["output"] or 0
                attempt.cached_input_tokens, attempt.cost_usd = c["cached"] or 0, (c["cost"] or ZERO).normalize()
            elif last and not metered:  # the CLI's self-report, for a job the gateway did not meter
                usage = job.usage or {}
                attempt.input_tokens, attempt.output_tokens = (int(usage.get("input_tokens") or 0),
                                                               int(usage.get("output_tokens") or 0))
                attempt.cached_input_tokens = int(usage.get("cached_input_tokens") or 0)
                attempt.cost_usd, attempt.unpriced = usage_cost(usage), 0 if usage_priced(usage) else 1
            found.append(attempt)
    order = {job_id: n for n, job_id in enumerate(ids)}
    return sorted(found, key=lambda a: (natural_key(f"{a.feature} {a.wp}"), order[a.job_id], a.attempt))


def _final_fates(jobs: list[DispatchJob]) -> dict[str, str]:
    """What became of each job's last attempt."""
    ejected = defaultdict(list)
    for wp_id, at in MergeQueueEntry.objects.filter(
            wp_id__in={j.wp_id for j in jobs}, state=MergeQueueEntry.EJECTED).values_list("wp_id", "updated_at"):
        ejected[wp_id].append(at)
    later: dict[int, list[DispatchJob]] = defaultdict(list)
    for job in jobs:
        later[job.wp_id].append(job)
    fates = {}
    for job in jobs:
        if job.state in JobState.ACTIVE:
            fates[job.id] = "running"
        elif job.state != JobState.SUCCEEDED:
            fates[job.id] = job.state
        elif any(j.queued_at > job.queued_at for j in later[job.wp_id]):
            fates[job.id] = "ejected" if any(job.finished_at and at > job.finished_at for at in ejected[job.wp_id]) \
                else "rejected"
        else:
            fates[job.id] = "merged" if job.wp.state == WPState.DONE else "pending"
    return fates


def outcomes(*, feature_id: int | None = None) -> dict:
    """The cost per merged WP (all its attempts, wasted ones included) and the wasted attempts."""
    found = attempts(feature_id=feature_id)
    merged_wps = {(a.feature, a.wp) for a in found if a.fate == "merged"}
    merged = [a for a in found if (a.feature, a.wp) in merged_wps]
    wasted = [a for a in found if a.wasted]

    def total(rows: list[Attempt]) -> str | None:
        return None if any(a.unpriced for a in rows) else str(sum((a.cost_usd for a in rows), ZERO).normalize())

    merged_cost = total(merged)
    return {
        "merged_wps": len(merged_wps),
        "merged_cost_usd": merged_cost,
        "cost_per_merged_wp_usd": (None if merged_cost is None or not merged_wps
                                   else str((Decimal(merged_cost) / len(merged_wps)).quantize(Decimal("0.00000001"))
                                            .normalize())),
        "wasted_attempts": len(wasted),
        "wasted_cost_usd": total(wasted),
        "wasted_by_fate": dict(sorted(Counter(a.fate for a in wasted).items())),
        "wasted": [{"wp": f"{a.feature} {a.wp}", "job_id": a.job_id, "attempt": a.attempt, "fate": a.fate,
                    "cost_usd": None if a.unpriced else str(a.cost_usd)} for a in wasted],
    }
