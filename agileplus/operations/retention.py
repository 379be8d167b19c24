"""Retention: what a farm that runs for weeks deletes, and when. Run by beat every
``RETENTION_EVERY_SECONDS`` (``tasks.purge``) and by ``agileplus purge``.

==================  ==============================================  ===============================
what                deleted when older than                         setting (days; 0 = keep)
==================  ==============================================  ===============================
job log lines       their job finished that long ago                AGILEPLUS_RETENTION_JOB_LOG_DAYS
outbox events       created that long ago, and published to NATS    AGILEPLUS_RETENTION_EVENT_DAYS
                    (every one when no NATS is configured)
webhook deliveries  delivered or failed that long ago               AGILEPLUS_RETENTION_WEBHOOK_DAYS
agent sessions      done WPs', or not written for that long         AGILEPLUS_AGENT_SESSION_RETENTION_DAYS
salvage refs        the time in their name (``salvage/…-YYYYmmdd-   AGILEPLUS_RETENTION_SALVAGE_DAYS
                    HHMMSS``, ``refs/agileplus/salvage/…-<unix>``),
                    or their job's end (``refs/agileplus/salvage/<job>``)
==================  ==============================================  ===============================

The audit chain is never pruned: nothing here touches ``AuditEntry`` (which refuses deletion anyway).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import tempfile

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from agileplus.dispatch import sessions
from agileplus.dispatch.models import DispatchJob, JobLogLine, JobState
from agileplus.events.models import Event
from agileplus.features.models import Project
from agileplus.operations.models import WebhookDelivery
from harnesses.git import GitError, git

log = logging.getLogger("agileplus.retention")
BATCH = 5000
SALVAGE_PATTERNS = ("refs/heads/salvage/*", "refs/agileplus/salvage/*")
_NAMED_TIME = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")
_UNIX_TIME = re.compile(r"-(\d{9,11})$")
_JOB_REF = re.compile(r"^refs/agileplus/salvage/(job_[a-z0-9]+)$")


def _cutoff(days: float, now: dt.datetime) -> dt.datetime | None:
    return now - dt.timedelta(days=days) if days > 0 else None


def _delete(queryset: QuerySet, dry_run: bool) -> int:
    """Delete in batches of primary keys: a short write lock each, never one long one."""
    if dry_run:
        return queryset.count()
    total = 0
    while ids := list(queryset.values_list("pk", flat=True)[:BATCH]):
        total += queryset.model.objects.filter(pk__in=ids).delete()[0]
    return total


def ref_time(ref: str) -> dt.datetime | None:
    """The time a salvage ref's name carries, or None."""
    if found := _NAMED_TIME.search(ref):
        return dt.datetime.strptime(found.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=dt.UTC)
    if found := _UNIX_TIME.search(ref):
        return dt.datetime.fromtimestamp(int(found.group(1)), tz=dt.UTC)
    return None


def purge_salvage_refs(cutoff: dt.datetime, *, dry_run: bool = False) -> list[str]:
    """Delete the salvage refs older than ``cutoff`` on every project's origin; returns them."""
    gone = []
    for origin in Project.objects.values_list("repo_url", flat=True).distinct():
        try:
            listed = git("ls-remote", origin, *SALVAGE_PATTERNS)
        except GitError as exc:
            log.warning("retention: cannot list the salvage refs of %s: %s", origin, exc)
            continue
        refs = [line.split("\t", 1)[1] for line in listed.splitlines() if "\t" in line]
        finished = dict(DispatchJob.objects.filter(
            pk__in=[m.group(1) for r in refs if (m := _JOB_REF.match(r))], finished_at__isnull=False,
        ).values_list("pk", "finished_at"))
        old = [ref for ref in refs if (when := ref_time(ref) or finished.get(
            (m := _JOB_REF.match(ref)) and m.group(1))) is not None and when < cutoff]
        if old and not dry_run:
            with tempfile.TemporaryDirectory(prefix="agileplus-retention-") as scratch:
                git("init", "--quiet", "--bare", scratch)
                git("push", "--quiet", origin, *(f":{ref}" for ref in old), cwd=scratch)
        gone += [f"{origin} {ref}" for ref in old]
    return gone


def purge(*, now: dt.datetime | None = None, dry_run: bool = False) -> dict:
    """Delete what is past its retention; returns how much of each (or would, with ``dry_run``)."""
    now = now or timezone.now()
    done: dict = {}
    if cutoff := _cutoff(settings.RETENTION_JOB_LOG_DAYS, now):
        old_jobs = DispatchJob.objects.filter(state__in=JobState.FINAL, finished_at__lt=cutoff)
        done["job_log_lines"] = _delete(JobLogLine.objects.filter(job__in=old_jobs), dry_run)
    if cutoff := _cutoff(settings.RETENTION_EVENT_DAYS, now):
        events = Event.objects.filter(created_at__lt=cutoff)
        if settings.NATS_URL:  # never one the relay has not published yet
            events = events.filter(published_at__isnull=False)
        done["events"] = _delete(events, dry_run)
    if cutoff := _cutoff(settings.RETENTION_WEBHOOK_DAYS, now):
        done["webhook_deliveries"] = _delete(WebhookDelivery.objects.filter(
            ~Q(state=WebhookDelivery.PENDING), created_at__lt=cutoff), dry_run)
    if not dry_run:
        done["agent_sessions"] = sessions.purge_sessions(now)
    if cutoff := _cutoff(settings.RETENTION_SALVAGE_DAYS, now):
        done["salvage_refs"] = purge_salvage_refs(cutoff, dry_run=dry_run)
    return done
