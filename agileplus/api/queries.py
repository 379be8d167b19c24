"""Read queries the API lists that have no CLI selector of their own (bounded: no query per row)."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob, Worker
from agileplus.features.models import Feature, Project, WorkPackage
from agileplus.review.models import ReviewReport


def projects() -> QuerySet:
    return Project.objects.order_by("name")


def jobs(*, feature: Feature | None = None, status: str | None = None, harness: str | None = None) -> QuerySet:
    qs = DispatchJob.objects.select_related("feature", "wp").annotate(n_commits=Count("commits"))
    if feature is not None:
        qs = qs.filter(feature=feature)
    if status:
        qs = qs.filter(state=status)
    if harness:
        qs = qs.filter(harness=harness)
    return qs


def audit_entries(feature: Feature, *, after: int, limit: int) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(feature=feature, seq__gt=after).order_by("seq")[:limit])


def review_reports(wp: WorkPackage, *, limit: int = 50) -> list[ReviewReport]:
    return list(ReviewReport.objects.filter(wp=wp).order_by("-created_at", "-pk")[:limit])


def workers() -> QuerySet:
    return Worker.objects.order_by("hostname")
