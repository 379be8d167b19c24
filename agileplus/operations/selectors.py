"""The aggregate queries behind /metrics: a few GROUP BYs over the stored rows, no row per job
in Python. Durations come from stored timestamps (one query per histogram, its buckets counted
by the database), so a scrape costs the same whether the farm ran a hundred jobs or a million.
Every label is bounded: states, harnesses, models, accounts, queues, kinds — never a job id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Count, FloatField, Min, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from agileplus.audit.models import AuditEntry
from agileplus.core.actors import SYSTEM_REAPER
from agileplus.dispatch.models import DispatchJob, JobState, ModelCall, Worker
from agileplus.events.models import Event
from agileplus.features.lifecycles import FeatureState
from agileplus.features.models import Feature
from agileplus.features.project_config import budget_config
from agileplus.operations.models import WebhookDelivery
from agileplus.review.models import MergeQueueEntry

SANDBOX_REFUSALS = ("escape_refused", "network_refused", "limit_exceeded")


@dataclass
class Histogram:
    labels: tuple[str, ...]
    buckets: list[tuple[float, int]]  # (upper bound, cumulative count), +Inf last
    count: int
    total: float


def _seconds(start: str, end: str) -> str:
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@dataclass(frozen=True)
class Span:
    """A duration between two timestamp columns of a row, and the histogram's upper bounds."""

    start: str
    end: str
    bounds: Sequence[float]


def duration_histograms(model, label: str, spans: Sequence[Span], where: str = "") -> list[list[Histogram]]:
    """Per span, per value of ``label``: how many rows took at most each bound. One scan of the
    table for every span (a row without both timestamps of a span counts in none of its buckets)."""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = []
    for i, span in enumerate(spans):
        columns.append(f"COUNT(d{i}), COALESCE(SUM(d{i}), 0)")
        columns += [f"SUM(CASE WHEN d{i} <= {float(b)} THEN 1 ELSE 0 END)" for b in span.bounds]
    durations = ", ".join(f"CASE WHEN {s.start} IS NOT NULL AND {s.end} IS NOT NULL THEN {_seconds(s.start, s.end)} "
                          f"END AS d{i}" for i, s in enumerate(spans))
    sql = (f"SELECT l, {', '.join(columns)} FROM (SELECT {label} AS l, {durations} FROM {table}"
           f"{' WHERE ' + where if where else ''}) AS spans GROUP BY l ORDER BY l")
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    found: list[list[Histogram]] = [[] for _ in spans]
    for lab, *values in rows:
        for i, span in enumerate(spans):
            count, total, *counts = values[:2 + len(span.bounds)]
            values = values[2 + len(span.bounds):]
            if count:
                found[i].append(Histogram((str(lab),), [(float(b), int(n or 0)) for b, n in zip(
                    span.bounds, counts, strict=True)] + [(float("inf"), int(count))], int(count), float(total or 0)))
    return found


def jobs_by_state_and_harness() -> list[dict]:
    """Jobs per state and harness, with the tokens and cost their usage records (one GROUP BY)."""
    return list(DispatchJob.objects.order_by().values("state", "harness").annotate(
        n=Count("id"), input=Sum(_usage_number("input_tokens")), output=Sum(_usage_number("output_tokens")),
        cached=Sum(_usage_number("cached_input_tokens")), cost=Sum(_usage_number("cost_usd"))))


def queue_depths(now: dt.datetime) -> list[tuple[str, int, int]]:
    """(queue, claimable now, parked until a rate limit's reset) of the queued jobs."""
    rows = DispatchJob.objects.order_by().filter(state=JobState.QUEUED).values("harness").annotate(
        ready=Count("id", filter=Q(not_before__isnull=True) | Q(not_before__lte=now)),
        parked=Count("id", filter=Q(not_before__gt=now)))
    return [(f"agents.{r['harness']}", r["ready"], r["parked"]) for r in rows]


def counts_by(model, field: str) -> list[tuple[str, int]]:
    return [(r[field], r["n"]) for r in model.objects.order_by().values(field).annotate(n=Count("pk"))]


def merge_batch_sizes() -> list[tuple[int, int]]:
    """(WPs in a batch, batches of that size) over the merge queues' batches."""
    sizes = (MergeQueueEntry.objects.order_by().exclude(batch="").values("batch").annotate(n=Count("id"))
             .values_list("n", flat=True))
    found: dict[int, int] = {}
    for n in sizes:
        found[n] = found.get(n, 0) + 1
    return sorted(found.items())


def _usage_number(key: str):
    return Cast(KeyTextTransform(key, "usage"), FloatField())


def model_calls() -> list[dict]:
    """The gateway's ledger per harness, model, provider account and outcome."""
    return list(ModelCall.objects.order_by().values("harness", "model", "account", "outcome").annotate(
        calls=Count("id"), input=Sum("input_tokens"), output=Sum("output_tokens"),
        cached=Sum("cached_input_tokens"), cost=Sum("cost_usd")))


def budgets_remaining(now: dt.datetime) -> list[tuple[str, str, float]]:
    """(feature, budget, USD left) for each active feature with a feature or day budget."""
    active = Feature.objects.exclude(state__in=[FeatureState.SHIPPED, FeatureState.CANCELLED]).exclude(
        agent_config={}).values_list("pk", "slug", "agent_config")
    limits = {}
    for pk, slug, config in active:
        try:
            found = budget_config(config or {})
        except Exception:  # noqa: BLE001 - a bad budget is refused where it is set; not the scrape's business
            continue
        if {"feature_usd", "day_usd"} & found.keys():
            limits[pk] = (slug, found)
    if not limits:
        return []
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    spent = {r["feature_id"]: r for r in DispatchJob.objects.order_by().filter(feature_id__in=limits).values(
        "feature_id").annotate(all=Sum(_usage_number("cost_usd")),
                               today=Sum(_usage_number("cost_usd"), filter=Q(queued_at__gte=start)))}
    out = []
    for pk, (slug, found) in limits.items():
        for budget, column in (("feature_usd", "all"), ("day_usd", "today")):
            if budget in found:
                used = Decimal(str((spent.get(pk) or {}).get(column) or 0))
                out.append((slug, budget, float(max(found[budget] - used, Decimal(0)))))
    return out


def event_kinds(suffixes: Sequence[str], prefix: str) -> dict[str, int]:
    """How many outbox events under ``prefix`` end with each suffix (one query)."""
    found = Event.objects.filter(subject__startswith=prefix).aggregate(
        **{s: Count("id", filter=Q(subject__endswith=f".{s}")) for s in suffixes})
    return {s: found[s] or 0 for s in suffixes}


def account_parks() -> int:
    return Event.objects.filter(subject__startswith="agileplus.account.", subject__endswith=".parked").count()


def reaper_takeovers() -> int:
    return AuditEntry.objects.filter(actor=str(SYSTEM_REAPER)).count()


def audit_chain_length() -> int:
    return AuditEntry.objects.count()


def outbox(now: dt.datetime) -> tuple[int, float]:
    """(events not yet published to NATS, age in seconds of the oldest of them)."""
    found = Event.objects.filter(published_at__isnull=True).aggregate(n=Count("id"), oldest=Min("created_at"))
    return found["n"], (now - found["oldest"]).total_seconds() if found["oldest"] else 0.0


def workers_alive(now: dt.datetime) -> int:
    silent = now - dt.timedelta(seconds=settings.WORKER_SILENT_SECONDS)
    return Worker.objects.filter(stopped_at__isnull=True, last_heartbeat__gte=silent).count()


def webhook_deliveries() -> tuple[list[tuple[str, str, int]], float]:
    """(endpoint, state, deliveries) and the age of the oldest pending one."""
    rows = [(r["endpoint_name"], r["state"], r["n"]) for r in WebhookDelivery.objects.order_by().values(
        "endpoint_name", "state").annotate(n=Count("id"))]
    oldest = WebhookDelivery.objects.filter(state=WebhookDelivery.PENDING).aggregate(m=Min("created_at"))["m"]
    return rows, (timezone.now() - oldest).total_seconds() if oldest else 0.0

