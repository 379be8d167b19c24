"""Read models of features: the one JSON shape the CLI ``status --json``, the API and
the dashboard share. Bounded query counts: no query per work package.

``feature_status(feature)`` builds it; its keys and types are declared once, by the API's
serializer of the same response (``agileplus/api/output/features.py``: ``FeatureStatusOut``, ``WPOut``),
which a test checks against real responses. Keys are stable; new keys may be added.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, NamedTuple

from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.utils import timezone

from agileplus.audit.models import AuditEntry
from agileplus.core.subjects import literal_prefix, subject_regex
from agileplus.dispatch.models import DispatchJob, JobCommit, JobState
from agileplus.events.models import Event
from agileplus.features import dag
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Dependency, Feature, WorkPackage

# Share of the 12-character bar each state fills (the seed draws doing and for_review half full).
PROGRESS = {WPState.PLANNED: 0.0, WPState.BLOCKED: 0.0, WPState.DOING: 0.5, WPState.FOR_REVIEW: 0.5,
            WPState.DONE: 1.0}


def format_days(days: float | Decimal | None) -> str | None:
    if days is None:
        return None
    value = float(days)
    text = f"{value:g}" if value != int(value) else str(int(value))
    return f"{text} day" if value == 1 else f"{text} days"


def ago(moment: dt.datetime | None, now: dt.datetime | None = None) -> str | None:
    """``2 days ago``, ``45 minutes ago``, ``just now``."""
    if moment is None:
        return None
    seconds = max(0, int(((now or timezone.now()) - moment).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _latest_jobs(feature: Feature, wp_ids: list[int] | None = None) -> dict[int, Any]:
    latest = DispatchJob.objects.filter(wp=OuterRef("pk")).order_by("-queued_at", "-pk").values("pk")[:1]
    wps = WorkPackage.objects.filter(feature=feature)
    if wp_ids is not None:
        wps = wps.filter(pk__in=wp_ids)
    job_ids = [pk for pk in wps.annotate(job_id=Subquery(latest)).values_list("job_id", flat=True) if pk]
    jobs = DispatchJob.objects.filter(pk__in=job_ids).prefetch_related(
        Prefetch("commits", queryset=JobCommit.objects.only("job_id", "attempt", "files").order_by("id"))
    )
    return {job.wp_id: job for job in jobs}


def _tests(result: dict) -> dict | None:
    tests = result.get("tests") if isinstance(result.get("tests"), dict) else {}
    passed = tests.get("passed", result.get("tests_passed"))
    total = tests.get("total", result.get("tests_total"))
    failed = tests.get("failed", result.get("tests_failed"))
    if passed is None and total is None:
        return None
    if total is None and failed is not None and passed is not None:
        total = passed + failed
    return {"passed": passed, "total": total, "failed": failed}


def duration(seconds: float) -> str:
    """``45 minutes``, ``2 hours``, ``30 seconds``: how long something took."""
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "0 seconds"


def wp_history(feature: Feature) -> dict[int, dict]:
    """Per WP id: review cycles, whether the first one approved, and whether the farm unblocked it
    (a dependency it merged; one imported as done does not count: that WP was simply ready)."""
    history: dict[int, dict] = {}
    unblocked_by: dict[int, set[str]] = {}
    imported_done: set[str] = set()
    rows = AuditEntry.objects.filter(feature=feature).filter(
        Q(transition__endswith=":review") | Q(transition__endswith=":unblocked") | Q(transition__endswith="->done")
    ).order_by("seq")
    for wp_id, transition, metadata in rows.values_list("wp_id", "transition", "metadata"):
        metadata = metadata or {}
        if transition.endswith("->done"):
            if metadata.get("imported_from"):
                imported_done.add(transition.split(":", 1)[0])
            continue
        h = history.setdefault(wp_id, {"review_cycles": 0, "approved_first_pass": False, "unblocked": False})
        if transition.endswith(":unblocked"):
            by = metadata.get("unblocked_by")
            unblocked_by.setdefault(wp_id, set()).update([by] if isinstance(by, str) else (by or []))
        else:
            h["review_cycles"] += 1
            if h["review_cycles"] == 1:
                h["approved_first_pass"] = bool(metadata.get("approved"))
    for wp_id, codes in unblocked_by.items():
        history[wp_id]["unblocked"] = bool(codes - imported_done)
    return history


def _job_brief(job: Any, now: dt.datetime | None = None) -> dict:
    """The job as the status screens show it (``dispatch.selectors.job_summary`` is the full record)."""
    commits = list(job.commits.all())
    files = {f for c in commits for f in (c.files or [])}
    result = job.result if isinstance(job.result, dict) else {}
    return {
        "id": job.pk,
        "agent": job.harness,
        "harness": job.harness,
        "session_id": job.session_id,
        "state": job.state,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "commits": len(commits),
        "files_changed": len(files) or result.get("files_changed") or 0,
        "tests": _tests(result),
        "current_activity": job.current_activity,
        "completed_ago": ago(job.finished_at, now),
    }


def _wp_status(wp: WorkPackage, deps: list[WorkPackage], job: Any, now: dt.datetime,
               history: dict | None = None) -> dict:
    blocked_by = [d.code for d in deps if d.state != WPState.DONE]
    if job is not None and wp.state == WPState.PLANNED and job.state in JobState.FINAL:
        job = None  # reset to planned: the ended attempt is history, not this WP's progress
    history = history or {}
    took = (duration((wp.done_at - job.started_at).total_seconds())
            if wp.state == WPState.DONE and wp.done_at and job is not None and job.started_at else None)
    return {
        "id": wp.pk,
        "code": wp.code,
        "title": wp.title,
        "state": wp.state,
        "ready": dag.is_ready(wp.state, [d.state for d in deps], waiting=WPState.PLANNED, done=WPState.DONE),
        "blocked_by": blocked_by,
        "dependencies": [{"code": d.code, "state": d.state, "done": d.state == WPState.DONE} for d in deps],
        "deliverables": list(wp.deliverables or []),
        "estimate_days": float(wp.estimate_days) if wp.estimate_days is not None else None,
        "estimate": format_days(wp.estimate_days),
        "progress": PROGRESS.get(wp.state, 0.0),
        "agent": (job.harness if job else "") or wp.agent,
        "done_at": wp.done_at.isoformat() if wp.done_at else None,
        "completed_ago": ago(wp.done_at, now),
        "completed_in": took,  # dispatch to done, for a WP the farm ran
        "review_cycles": history.get("review_cycles", 0),
        "approved_first_pass": history.get("approved_first_pass", False),
        "unblocked": history.get("unblocked", False),
        "job": _job_brief(job, now) if job else None,
    }


class _Row(NamedTuple):
    code: str
    state: str
    estimate_days: Decimal | None


def remaining_critical_path(wps: list[WorkPackage], edges: list[tuple[str, str]]) -> tuple[float, list[str]]:
    """Longest chain of estimates through the WPs not done yet."""
    remaining = {wp.code: float(wp.estimate_days or 0) for wp in wps if wp.state != WPState.DONE}
    live_edges = [(a, b) for a, b in edges if a in remaining and b in remaining]
    return dag.critical_path(remaining, live_edges)


def _whole_feature(feature: Feature, wps: list, edges: list, *, paged: bool, summary: bool) -> tuple[list, list]:
    """The WPs and edges the totals and critical path cover: the page's when it is the whole
    feature, else the whole feature's as plain rows (none without ``summary``)."""
    if paged and not summary:
        return [], []
    if not paged:
        return wps, edges
    rows = list(feature.work_packages.values_list("pk", "code", "state", "estimate_days"))
    code_of = {row[0]: row[1] for row in rows}  # ids → codes here, not two joins in the database
    return [_Row(*row[1:]) for row in rows], [
        (code_of[a], code_of[b])
        for a, b in Dependency.objects.filter(wp__feature=feature).values_list("wp_id", "depends_on_id")]


def feature_status(feature: Feature, *, now: dt.datetime | None = None, after: str = "", limit: int | None = None,
                   codes: list[str] | None = None, summary: bool = True) -> dict:
    """Everything the status screens show about one feature (about six queries, any size).

    ``work_packages`` holds every WP, or with ``limit`` one page of them in code order after
    ``after`` (then ``work_packages_page`` says where the next page starts), or with ``codes``
    just those. Totals and the critical path always cover the whole feature, read as plain rows:
    a 10,000-WP feature is not 10,000 WP objects with their dependencies and jobs; without
    ``summary`` they are left out (one WP's detail does not need the feature's critical path)."""
    now = now or timezone.now()
    feature = Feature.objects.select_related("project").get(pk=feature.pk)
    paged = limit is not None or codes is not None
    page = feature.work_packages.order_by("code")
    if codes is not None:
        page = page.filter(code__in=codes)
    elif after:
        page = page.filter(code__gt=after)
    if limit is not None:
        page = page[: limit + 1]
    wps = list(page.prefetch_related(
        Prefetch("dependency_links",
                 queryset=Dependency.objects.select_related("depends_on").order_by("depends_on__code"))
    ))
    more = limit is not None and len(wps) > limit
    wps = wps[:limit] if limit is not None else wps
    jobs = _latest_jobs(feature, [wp.pk for wp in wps] if paged else None)
    history = wp_history(feature)
    items = []
    edges = []
    for wp in wps:
        deps = [link.depends_on for link in wp.dependency_links.all()]
        edges.extend((wp.code, d.code) for d in deps)
        items.append(_wp_status(wp, deps, jobs.get(wp.pk), now, history.get(wp.pk)))
    light, all_edges = _whole_feature(feature, wps, edges, paged=paged, summary=summary)
    done = sum(1 for wp in light if wp.state == WPState.DONE)
    days, path = remaining_critical_path(light, all_edges)
    status = {
        "feature": {
            "id": feature.pk,
            "slug": feature.slug,
            "number": feature.number,
            "title": feature.title,
            "state": feature.state,
            "project": feature.project.name,
        },
        "work_packages": items,
        "totals": {"done": done, "total": len(light), "percent": round(100 * done / len(light)) if light else 0},
        "estimated_completion": {"days": days, "estimate": format_days(days), "critical_path": path},
    }
    if not summary:
        del status["totals"], status["estimated_completion"]
    if limit is not None:
        status["work_packages_page"] = {"after": after or None, "limit": limit,
                                        "next_after": wps[-1].code if more else None}
    return status


def features_overview(*, include_closed: bool = True) -> list[dict]:
    """One row per feature with WP counts (two queries)."""
    qs = Feature.objects.select_related("project").annotate(
        wp_total=Count("work_packages"),
        wp_done=Count("work_packages", filter=Q(work_packages__state=WPState.DONE)),
        wp_doing=Count("work_packages", filter=Q(work_packages__state=WPState.DOING)),
        wp_blocked=Count("work_packages", filter=Q(work_packages__state=WPState.BLOCKED)),
    ).order_by("number", "slug")
    if not include_closed:
        qs = qs.exclude(state__in=["shipped", "cancelled"])
    return [
        {
            "id": f.pk,
            "slug": f.slug,
            "number": f.number,
            "title": f.title,
            "state": f.state,
            "project": f.project.name,
            "totals": {"done": f.wp_done, "total": f.wp_total, "doing": f.wp_doing, "blocked": f.wp_blocked,
                       "percent": round(100 * f.wp_done / f.wp_total) if f.wp_total else 0},
        }
        for f in qs
    ]


def _event_query(feature: Feature | None, pattern: str | None, after: int):
    qs = Event.objects.filter(pk__gt=after).order_by("pk")
    if feature is not None:
        qs = qs.filter(feature=feature)
    if pattern:
        prefix = literal_prefix(pattern)
        if prefix == pattern:
            qs = qs.filter(subject=pattern)
        elif prefix:
            qs = qs.filter(subject__startswith=prefix)
    return qs


def scan_events(*, feature: Feature | None = None, pattern: str | None = None, after: int = 0,
                batch: int = 500) -> tuple[list, int]:
    """One poll for ``events tail``: the matching rows among the next ``batch`` ids after ``after``,
    and the highest id scanned (the next poll's ``after``), so filtered-out rows are read once."""

    regex = subject_regex(pattern) if pattern else None
    rows = list(_event_query(feature, pattern, after)[:batch])
    high = rows[-1].pk if rows else after
    return [e for e in rows if regex is None or regex.match(e.subject)], high


def list_events(*, feature: Feature | None = None, pattern: str | None = None, after: int = 0,
                limit: int | None = 100) -> list:
    """Outbox rows after id ``after`` in id order, by feature and NATS-style subject pattern."""
    out: list = []
    while True:
        matches, high = scan_events(feature=feature, pattern=pattern, after=after)
        out.extend(matches)
        if high == after or (limit and len(out) >= limit):
            return out[:limit] if limit else out
        after = high
