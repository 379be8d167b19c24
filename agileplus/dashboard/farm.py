"""The farm's pages: the timeline of every worker's jobs, review runs, best-of-N candidates and
merge-queue batches; workers with their harnesses and sandboxes; parked jobs; merge queues; costs
by day and harness."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from agileplus.dashboard import layout
from agileplus.dispatch import selectors as jobs
from agileplus.dispatch.costs import usage_cost
from agileplus.dispatch.models import DispatchJob, JobState, Worker
from agileplus.review.models import MergeQueueEntry, ReviewRequest
from agileplus.review.selectors import merge_queues
from agileplus.workflow.models import Candidate

MAX_SPANS = 2000          # bars drawn at most (the newest)
MERGE_ROW = "merge queue"


def _job_spans(since: dt.datetime) -> list[layout.Span]:
    rows = (DispatchJob.objects.filter(claimed_at__isnull=False).exclude(worker="")
            .filter(Q(finished_at__isnull=True) | Q(finished_at__gte=since)).select_related("wp", "feature")
            .order_by("-claimed_at")[:MAX_SPANS])
    return [layout.Span(j.worker, j.claimed_at, j.finished_at if j.state in JobState.FINAL else None, "job", j.state,
                        f"{j.wp.code} · {j.harness}", reverse("dashboard-job", args=[j.id]),
                        f"{j.id} {j.feature.slug} {j.wp.code} {j.harness}: {j.state} (attempt {j.attempt})")
            for j in rows]


def _candidate_spans(since: dt.datetime) -> list[layout.Span]:
    """Best of N: a row per candidate (``003 WP01 c2``) beside the workers' rows, its bar saying what
    became of it (won, lost, stopped, failed) once the round settled, else its job's state."""
    rows = (Candidate.objects.filter(job__claimed_at__isnull=False)
            .filter(Q(job__finished_at__isnull=True) | Q(job__finished_at__gte=since))
            .select_related("job", "round__wp__feature").order_by("-job__claimed_at")[:MAX_SPANS])
    spans = []
    for c in rows:
        job, wp = c.job, c.round.wp
        outcome = c.outcome or job.state
        spans.append(layout.Span(f"{wp.feature.slug[:3]} {wp.code} c{c.index}", job.claimed_at,
                                 job.finished_at if job.state in JobState.FINAL else None, "candidate", outcome,
                                 f"c{c.index} · {c.harness} · {outcome}", reverse("dashboard-wp", args=[
                                     wp.feature.slug, wp.code]),
                                 f"candidate {c.index} of {wp.feature.slug} {wp.code} ({job.id} on {job.worker}): "
                                 f"{outcome}" + (f", rank {c.rank}" if c.rank else "")))
    return spans


def review_outcome(request: ReviewRequest) -> str:
    """A finished review's bar says what it decided; a move, a running or a failed run its state."""
    if request.state != ReviewRequest.DONE or request.report is None:
        return request.state
    return "approved" if request.report.approved else "changes_requested"


def _review_spans(since: dt.datetime) -> list[layout.Span]:
    """Every review (asked through the API or the CLI, or the automatic one after an agent
    finished) and every queued move to done, on the row of the worker that ran it."""
    rows = (ReviewRequest.objects.filter(started_at__isnull=False)
            .filter(Q(finished_at__isnull=True) | Q(finished_at__gte=since)).select_related("wp", "feature", "report")
            .order_by("-started_at")[:MAX_SPANS])
    return [layout.Span(r.worker or "review", r.started_at, r.finished_at, "review", outcome := review_outcome(r),
                        f"{r.kind} {r.wp.code}", reverse("dashboard-wp", args=[r.feature.slug, r.wp.code]),
                        f"{r.kind} of {r.feature.slug} {r.wp.code} by {r.actor}: {outcome.replace('_', ' ')}")
            for r in rows]


def _batch_spans(since: dt.datetime) -> list[layout.Span]:
    """One bar per merge-queue batch: from its first entry's arrival to its last entry's settling."""
    batches: dict[str, list[MergeQueueEntry]] = defaultdict(list)
    for entry in (MergeQueueEntry.objects.exclude(batch="").filter(updated_at__gte=since)
                  .select_related("wp", "feature").order_by("id")[:MAX_SPANS]):
        batches[entry.batch].append(entry)
    spans = []
    for batch, entries in batches.items():
        states = {e.state for e in entries}
        running = bool(states & set(MergeQueueEntry.ACTIVE))
        outcome = "testing" if running else ("ejected" if MergeQueueEntry.EJECTED in states else "merged")
        first = entries[0]
        spans.append(layout.Span(MERGE_ROW, min(e.enqueued_at for e in entries),
                                 None if running else max(e.updated_at for e in entries), "merge", outcome,
                                 f"batch {batch[:6]} ({len(entries)})",
                                 reverse("dashboard-wp", args=[first.feature.slug, first.wp.code]),
                                 f"batch {batch}: " + ", ".join(f"{e.wp.code} {e.state}" for e in entries)))
    return spans


def timeline(*, hours: float = 2.0, now: dt.datetime | None = None) -> layout.Timeline:
    """The last ``hours`` of the farm (shorter when less happened), with room to the right for now."""
    now = now or timezone.now()
    since = now - dt.timedelta(hours=hours)
    spans = _job_spans(since) + _review_spans(since) + _candidate_spans(since) + _batch_spans(since)
    spans.sort(key=lambda s: (s.row == MERGE_ROW, s.row, s.start))
    earliest = min((s.start for s in spans), default=now)
    start = max(since, min(earliest, now - dt.timedelta(minutes=1)) - dt.timedelta(seconds=5))
    end = now + (now - start) / 8  # the now-line moves into this margin before the page redraws
    return layout.layout_timeline(spans, start=start, end=end, now=now)


def cost_by_day_and_harness(days: int = 14, now: dt.datetime | None = None) -> dict[tuple[str, str], float]:
    since = (now or timezone.now()) - dt.timedelta(days=days)
    costs: dict[tuple[str, str], float] = defaultdict(float)
    for queued_at, harness, usage in DispatchJob.objects.filter(queued_at__gte=since).values_list(
            "queued_at", "harness", "usage"):
        costs[(timezone.localtime(queued_at).date().isoformat(), harness)] += float(usage_cost(usage))
    return dict(costs)


def batches(queue: dict) -> list[dict]:
    """A queue's entries grouped by batch; a batch with an ejected entry beside others was bisected."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for entry in queue["entries"] + queue["recent"]:
        if entry["batch"]:
            grouped[entry["batch"]].append(entry)
    return [{"id": batch, "entries": entries, "size": len(entries),
             "bisected": len(entries) > 1 and any(e["state"] == "ejected" for e in entries)}
            for batch, entries in grouped.items()]


def farm_view(now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    fresh = now - dt.timedelta(seconds=jobs.WORKER_STALE_SECONDS)
    workers = [{"worker": w, "alive": bool(w.last_heartbeat and w.last_heartbeat >= fresh and not w.stopped_at),
                "harnesses": sorted((w.harnesses or {}).items())} for w in Worker.objects.all()]
    parked = list(DispatchJob.objects.filter(state=JobState.QUEUED, not_before__gt=now)
                  .select_related("wp", "feature").order_by("not_before")[:100])
    queues = [{**q, "batches": batches(q)} for q in merge_queues()]
    return {"workers": workers, "agents": jobs.agents_overview(), "parked": parked, "queues": queues,
            "chart": layout.cost_chart(cost_by_day_and_harness(now=now))}
