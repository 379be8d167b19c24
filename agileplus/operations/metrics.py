"""The farm's Prometheus metrics, collected from the database at each scrape (``selectors``).

The web process serves them (``views.metrics``): every figure is in the database, so one scrape
of one web process sees the whole farm, workers on other machines included, and a scrape never
waits on a worker. Names follow Prometheus conventions (``agileplus_`` prefix, base units:
seconds and USD, ``_total`` for counters); labels are bounded (states, harnesses, models,
accounts, queues, kinds, features with a budget — never a job or WP id).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.features.models import WorkPackage
from agileplus.operations import selectors as q
from agileplus.review.models import MergeQueueEntry, ReviewRequest

JOB_SECONDS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
START_SECONDS = (0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
REVIEW_SECONDS = (1, 5, 10, 30, 60, 120, 300, 600, 1800)
MERGE_SECONDS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
BATCH_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 32)
log = logging.getLogger("agileplus.metrics")


def _gauge(name: str, doc: str, labels: list[str], rows) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for *values, number in rows:
        family.add_metric([str(v) for v in values], float(number or 0))
    return family


def _counter(name: str, doc: str, labels: list[str], rows) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for *values, number in rows:
        family.add_metric([str(v) for v in values], float(number or 0))
    return family


def _histogram(name: str, doc: str, label: str, found: list[q.Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for h in found:
        family.add_metric(list(h.labels), [("+Inf" if b == float("inf") else repr(b), n) for b, n in h.buckets],
                          sum_value=h.total)
    return family


def _durations() -> Iterator[Metric]:
    ran, waited = q.duration_histograms(DispatchJob, "harness", [
        q.Span("started_at", "finished_at", JOB_SECONDS), q.Span("queued_at", "started_at", START_SECONDS)])
    yield _histogram("agileplus_job_duration_seconds", "Agent run time of finished jobs (start to finish)",
                     "harness", ran)
    yield _histogram("agileplus_job_start_delay_seconds", "Enqueue to agent start of started jobs", "harness", waited)
    (reviews,) = q.duration_histograms(ReviewRequest, "kind", [q.Span("started_at", "finished_at", REVIEW_SECONDS)])
    yield _histogram("agileplus_review_duration_seconds", "Run time of finished review requests (checks)",
                     "kind", reviews)
    (merges,) = q.duration_histograms(MergeQueueEntry, "state", [q.Span("enqueued_at", "updated_at", MERGE_SECONDS)],
                                      where="state IN ('merged', 'ejected')")
    yield _histogram("agileplus_merge_queue_duration_seconds", "Approved to merged or ejected, in the merge queue",
                     "outcome", merges)
    sizes = q.merge_batch_sizes()
    batches = HistogramMetricFamily("agileplus_merge_batch_size", "WPs per merge queue batch")
    if sizes:
        buckets = [(repr(float(b)), sum(n for size, n in sizes if size <= b)) for b in BATCH_SIZES]
        batches.add_metric([], buckets + [("+Inf", sum(n for _s, n in sizes))],
                           sum_value=float(sum(size * n for size, n in sizes)))
    yield batches


def _spending(now, jobs: list[dict]) -> Iterator[Metric]:
    usage = {}
    for row in jobs:  # per harness, over its states
        total = usage.setdefault(row["harness"], {"harness": row["harness"], "input": 0, "output": 0, "cached": 0,
                                                  "cost": 0})
        for key in ("input", "output", "cached", "cost"):
            total[key] += row[key] or 0
    usage = list(usage.values())
    yield _counter("agileplus_job_tokens", "Tokens the jobs' usage records, per harness and kind",
                   ["harness", "kind"], [(r["harness"], kind, r[key]) for r in usage
                                         for kind, key in (("input", "input"), ("output", "output"),
                                                           ("cached_input", "cached"))])
    yield _counter("agileplus_job_cost_usd", "Cost the jobs' usage records, per harness (priced runs)",
                   ["harness"], [(r["harness"], r["cost"]) for r in usage])
    calls = q.model_calls()
    labels = ["harness", "model", "account"]
    yield _counter("agileplus_model_calls", "Model calls through the gateway, per outcome", [*labels, "outcome"],
                   [(r["harness"], r["model"], r["account"], r["outcome"], r["calls"]) for r in calls])
    yield _counter("agileplus_model_tokens", "Tokens billed through the gateway", [*labels, "kind"],
                   [(r["harness"], r["model"], r["account"], kind, r[key]) for r in calls
                    for kind, key in (("input", "input"), ("output", "output"), ("cached_input", "cached"))])
    yield _counter("agileplus_model_cost_usd", "Cost billed through the gateway (priced calls)", labels,
                   [(r["harness"], r["model"], r["account"], r["cost"]) for r in calls])
    yield _gauge("agileplus_budget_remaining_usd", "USD left of each active feature's feature or day budget",
                 ["feature", "budget"], q.budgets_remaining(now))


def _incidents(now) -> Iterator[Metric]:
    refusals = q.event_kinds(q.SANDBOX_REFUSALS, "agileplus.agent.job.")
    yield _counter("agileplus_sandbox_refusals", "Escapes, network destinations and limits the sandbox refused",
                   ["kind"], sorted(refusals.items()))
    yield _counter("agileplus_account_parks", "Provider accounts parked", [], [(q.account_parks(),)])
    yield _counter("agileplus_reaper_takeovers", "Attempts the reaper took over from a lost worker", [],
                   [(q.reaper_takeovers(),)])
    pending, lag = q.outbox(now)
    yield _gauge("agileplus_outbox_pending_events", "Outbox events not yet published to NATS", [], [(pending,)])
    yield _gauge("agileplus_outbox_lag_seconds", "Age of the oldest unpublished outbox event", [], [(lag,)])
    yield _counter("agileplus_audit_entries", "Entries in the audit chain (every feature)", [],
                   [(q.audit_chain_length(),)])
    deliveries, oldest = q.webhook_deliveries()
    yield _gauge("agileplus_webhook_deliveries", "Webhook deliveries per endpoint and state", ["endpoint", "state"],
                 deliveries)
    yield _gauge("agileplus_webhook_oldest_pending_seconds", "Age of the oldest pending webhook delivery", [],
                 [(oldest,)])


class FarmCollector:
    """A prometheus_client collector whose every collect() is a fresh read of the database."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        jobs = q.jobs_by_state_and_harness()
        yield _gauge("agileplus_jobs", "Dispatch jobs per state and harness", ["state", "harness"],
                     [(j["state"], j["harness"], j["n"]) for j in jobs])
        yield _gauge("agileplus_jobs_active", "Jobs queued, claimed or running", [],
                     [(sum(j["n"] for j in jobs if j["state"] in JobState.ACTIVE),)])
        depths = q.queue_depths(now)
        yield _gauge("agileplus_queue_depth", "Queued jobs claimable now, per queue", ["queue"],
                     [(queue, ready) for queue, ready, _p in depths])
        yield _gauge("agileplus_queue_parked", "Queued jobs parked until a rate limit's reset, per queue", ["queue"],
                     [(queue, parked) for queue, _r, parked in depths])
        yield _gauge("agileplus_work_packages", "Work packages per state", ["state"], q.counts_by(WorkPackage, "state"))
        yield _gauge("agileplus_review_requests", "Review requests per state", ["state"],
                     q.counts_by(ReviewRequest, "state"))
        yield _gauge("agileplus_merge_queue_entries", "Merge queue entries per state", ["state"],
                     q.counts_by(MergeQueueEntry, "state"))
        yield _gauge("agileplus_workers_alive", "Workers heard from recently", [], [(q.workers_alive(now),)])
        yield from _durations()
        yield from _spending(now, jobs)
        yield from _incidents(now)


def collect() -> bytes:
    """The exposition text, read from the database now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FarmCollector())
    return generate_latest(registry)


@dataclass
class Snapshot:
    text: bytes
    taken: float  # time.monotonic() when it was read
    seconds: float  # how long reading it took


class Refresher:
    """Serves the latest snapshot and reads the next one on a thread of its own every
    ``METRICS_REFRESH_SECONDS``: a scrape costs a copy of bytes, not the queries over every
    job (a few hundred ms with 10,000 WPs on SQLite), and concurrent scrapes never multiply them.
    The thread runs while scrapes come (it stops after five refreshes nobody asked for); a
    snapshot older than three refreshes is read again by the scrape itself. 0 reads at each scrape."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards the fields
        self.reading = threading.Lock()  # one database read at a time
        self.snapshot: Snapshot | None = None
        self.last_scrape = 0.0
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def read(self, *, own_thread: bool = False) -> Snapshot:
        with self.reading:
            start = time.monotonic()
            try:
                text = collect()
            finally:
                if own_thread:  # the refresher's connection; a request's is closed by Django
                    connection.close()
            snapshot = Snapshot(text, time.monotonic(), time.monotonic() - start)
            with self.lock:
                self.snapshot = snapshot
            return snapshot

    def scrape(self) -> bytes:
        every = settings.METRICS_REFRESH_SECONDS
        if every <= 0:
            snapshot = self.read()
        else:
            with self.lock:
                self.last_scrape, snapshot = time.monotonic(), self.snapshot
                if self.thread is None:
                    self.thread = threading.Thread(target=self._run, args=(every,), name="metrics", daemon=True)
                    self.thread.start()
            if snapshot is None or time.monotonic() - snapshot.taken > 3 * every:
                snapshot = self.read()
        age = time.monotonic() - snapshot.taken
        return snapshot.text + (
            "# HELP agileplus_metrics_age_seconds How old the figures of this scrape are\n"
            "# TYPE agileplus_metrics_age_seconds gauge\n"
            f"agileplus_metrics_age_seconds {age:.3f}\n"
            "# HELP agileplus_metrics_read_seconds How long reading them from the database took\n"
            "# TYPE agileplus_metrics_read_seconds gauge\n"
            f"agileplus_metrics_read_seconds {snapshot.seconds:.3f}\n").encode()

    def _run(self, every: float) -> None:
        try:
            # The scrape that started this thread holds a snapshot: the next read is due in `every`.
            while not self.stopping.wait(every) and time.monotonic() - self.last_scrape < 5 * every:
                self.read(own_thread=True)
        except Exception:  # noqa: BLE001 - the database is away: the next scrape reads (and says) it
            log.exception("metrics: reading the figures failed")
        finally:
            with self.lock:
                self.thread = None


    def stop(self) -> None:
        """End the thread (a test; a process that stops serving)."""
        self.stopping.set()
        if (thread := self.thread) is not None:
            thread.join(timeout=60)


REFRESHER = Refresher()


def render() -> bytes:
    """The exposition text of one scrape."""
    return REFRESHER.scrape()
