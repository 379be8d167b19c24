"""What the page of one WP and the page of one job show: history, attempts with their cost,
commits with their diffs, review reports by section, governance findings, sessions, salvage
refs, and the actions the viewer's role may take (the API's own permission functions)."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from agileplus.api.roles import caller_for_user, ensure_may, ensure_owns_job, ensure_owns_wp
from agileplus.audit.models import AuditEntry
from agileplus.core.errors import PermissionDenied
from agileplus.dispatch import selectors as jobs
from agileplus.dispatch.costs import usage_cost
from agileplus.dispatch.models import ACTIVITY_STREAM, SETUP_STREAM, TOOL_STREAM, AgentSession, DispatchJob, JobState
from agileplus.dispatch.sessions import session_summary
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Feature, WorkPackage
from agileplus.features.selectors import feature_status
from agileplus.features.services import get_wp
from agileplus.review.models import MergeQueueEntry, ReviewReport, ReviewRequest
from agileplus.review.selectors import entry_as_dict
from agileplus.workflow.selectors import latest_round, round_summary
from harnesses.git import git_run, mirror_path

LOG_LIMIT = 2000            # lines shown on a job's page (the API pages through the rest)
DIFF_LIMIT = 60_000         # characters of one commit's diff shown
# As `logs` shows it: the readable view has the activity lines (`Created src/login.rs (245 lines)`)
# and not the tool lines they were read from; the raw view has the tool lines, setup and stderr.
READABLE_WITHOUT = (SETUP_STREAM, "stderr", TOOL_STREAM)
RAW_WITHOUT = (ACTIVITY_STREAM,)
SHA = re.compile(r"[0-9a-f]{7,64}")


def attempt_row(job: DispatchJob) -> dict:
    usage = job.usage or {}
    return {"id": job.id, "harness": job.harness, "state": job.state, "attempt": job.attempt,
            "worker": job.worker, "queued_at": job.queued_at, "started_at": job.started_at,
            "finished_at": job.finished_at, "input_tokens": int(usage.get("input_tokens") or 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
            "cached_input_tokens": int(usage.get("cached_input_tokens") or 0), "cost_usd": usage_cost(usage),
            "model": jobs.job_model(job), "session_id": job.session_id,
            "resumed_from": (job.manifest or {}).get("resumed_from_session") or "", "error": job.error,
            "activity": job.current_activity}


def report_sections(report) -> list[dict]:
    """A review report's checks grouped by their section, in the order they ran."""
    sections: dict[str, list[dict]] = defaultdict(list)
    for check in report.checks or []:
        if isinstance(check, dict):
            sections[str(check.get("section") or "checks")].append(check)
    return [{"name": name, "ok": all(c.get("ok") for c in checks), "checks": checks}
            for name, checks in sections.items()]


def review_rows(reports: list[ReviewReport]) -> list[dict]:
    """Each report by section, with the run that made it (every review, the automatic one too, is
    a request with its worker, start and end): one query for all the runs."""
    runs = {r.report_id: r for r in ReviewRequest.objects.filter(report__in=reports)}
    return [{"report": report, "sections": report_sections(report), "run": _run(runs.get(report.pk))}
            for report in reports]


def _run(request: ReviewRequest | None) -> dict | None:
    if request is None or request.started_at is None:
        return None
    seconds = (request.finished_at - request.started_at).total_seconds() if request.finished_at else None
    return {"worker": request.worker, "started_at": request.started_at, "seconds": seconds}


def _history(wp: WorkPackage) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(wp=wp).order_by("seq"))


def governance_findings(history: list[AuditEntry]) -> list[dict]:
    """Every governance violation an attempt was blocked with (the runner's audit evidence)."""
    return [{**v, "seq": e.seq, "at": e.timestamp} for e in history
            for v in (e.metadata or {}).get("violations", []) if isinstance(v, dict)]


def salvage_refs(history: list[AuditEntry]) -> list[dict]:
    """Branches a fresh start set aside on the origin (``salvage/…``), newest last."""
    return [{"branch": m["salvage_branch"], "sha": m.get("salvaged_sha") or "", "old_branch": m.get("old_branch"),
             "at": e.timestamp} for e in history if e.transition.endswith(":fresh_start")
            for m in [e.metadata or {}] if m.get("salvage_branch")]


def wp_detail(feature: Feature, code: str, user) -> dict:
    """Everything the WP's page shows (a bounded number of queries: one per section)."""
    wp = get_wp(feature, code)
    status = feature_status(feature, codes=[wp.code], summary=False)["work_packages"][0]
    attempts = [attempt_row(j) for j in wp.jobs.order_by("queued_at", "id")]
    history = _history(wp)
    session = AgentSession.objects.select_related("wp").filter(wp=wp).order_by("-updated_at").first()
    reports = list(wp.review_reports.all()[:10])
    latest = DispatchJob.objects.filter(wp=wp).order_by("-queued_at").first()
    return {
        "wp": wp, "status": status, "attempts": attempts, "history": history,
        "total_cost": sum((a["cost_usd"] for a in attempts), Decimal(0)),
        "reviews": review_rows(reports),
        "governance": governance_findings(history), "salvage": salvage_refs(history),
        "session": session_summary(session) if session else None,
        "merge_queue": [entry_as_dict(e) for e in MergeQueueEntry.objects.filter(wp=wp).select_related(
            "wp", "feature").order_by("-id")[:10]],
        "actions": wp_actions(user, wp, latest),
        "candidates": round_summary(rnd) if (rnd := latest_round(wp)) else None,
    }


def _allowed(user, action: str, wp: WorkPackage | None = None, job: DispatchJob | None = None) -> bool:
    """Whether the API would let this user do it: the same checks as its views, in the same order."""
    caller = caller_for_user(user)
    try:
        ensure_may(caller, action)
        if wp is not None:
            ensure_owns_wp(caller, wp)
        if job is not None:
            ensure_owns_job(caller, job)
    except PermissionDenied:
        return False
    return True


def wp_actions(user, wp: WorkPackage, job: DispatchJob | None) -> list[dict]:
    """The buttons the WP's page offers: each one a POST to the API view that does it."""
    slug, code = wp.feature.slug, wp.code
    base = f"/api/features/{slug}"
    actions = []
    idle = job is None or job.state not in JobState.ACTIVE
    if wp.state in (WPState.PLANNED, WPState.BLOCKED) and idle and _allowed(user, "implement"):
        actions.append({"name": "dispatch", "label": f"Dispatch {code}", "url": f"{base}/implement",
                        "body": {"wps": [code]}})
    if wp.state == WPState.FOR_REVIEW and _allowed(user, "review"):
        actions.append({"name": "review", "label": "Review (apply)", "url": f"{base}/wps/{code}/review",
                        "body": {"apply": True}})
    if wp.state == WPState.FOR_REVIEW and _allowed(user, "move"):
        actions.append({"name": "move", "label": "Move to done (merge)", "url": f"{base}/wps/{code}/move",
                        "body": {"to": "done"}})
    if job is not None:
        actions += job_actions(user, job)
    return actions


def job_actions(user, job: DispatchJob) -> list[dict]:
    if job.state in JobState.ACTIVE and _allowed(user, "cancel", job=job):
        return [{"name": "cancel", "label": f"Cancel {job.id}", "url": f"/api/jobs/{job.id}/cancel", "body": {}}]
    return []


def _repositories(origin: str) -> list[Path]:
    """Where a commit may be read without touching the network: the origin itself when it is a
    folder on this machine, and the merge workspace the review workers keep of it."""
    found = [mirror_path(settings.DATA_DIR / "merge", origin).with_suffix("")]
    if "://" not in origin and ":" not in origin.split("/", 1)[0]:
        found.insert(0, Path(origin))
    return [p for p in found if p.is_dir()]


def commit_diff(origin: str, sha: str) -> str | None:
    """``git show`` of one commit (stat and patch) through the hardened git layer (no hooks, no
    repository config that runs anything); None when no copy of the repository here has it."""
    if not SHA.fullmatch(sha or ""):
        return None
    for repo in _repositories(origin):
        proc = git_run(["show", "--no-color", "--no-ext-diff", "--stat", "--patch", "--format=%H%n%an <%ae>%n%ad%n%n%B",
                        sha, "--"], cwd=repo)
        if proc.returncode == 0:
            text = proc.stdout
            return text if len(text) <= DIFF_LIMIT else text[:DIFF_LIMIT] + f"\n… ({len(text):,} characters, cut)"
    return None


def job_detail(job_id: str, user, *, raw: bool = False) -> dict:
    job = jobs.get_job(job_id)
    origin = job.feature.project.repo_url
    without = RAW_WITHOUT if raw else READABLE_WITHOUT
    lines = jobs.log_lines(job, limit=LOG_LIMIT, without=without)
    return {
        "job": job, "row": attempt_row(job), "lines": lines, "raw": raw, "last_seq": lines[-1].seq if lines else 0,
        "following": job.state in JobState.ACTIVE, "without": " ".join(without),
        "commits": [{"commit": c, "diff": commit_diff(origin, c.sha)} for c in job.commits.all()],
        "reviews": review_rows(list(job.review_reports.all()[:5])),
        "actions": job_actions(user, job),
        "wp_url": reverse("dashboard-wp", args=[job.feature.slug, job.wp.code]),
    }
