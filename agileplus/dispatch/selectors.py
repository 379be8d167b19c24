"""Read-side queries for jobs, logs and agents."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count
from django.utils import timezone

from agileplus.core.errors import NotFound
from agileplus.dispatch.models import AgentHarness, DispatchJob, JobLogLine, JobState, Worker
from agileplus.features.models import WorkPackage
from harnesses.registry import adapter_names

WORKER_STALE_SECONDS = 30


def get_job(job_id: str) -> DispatchJob:
    job = DispatchJob.objects.select_related("feature", "wp").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"no job {job_id}", field="job", fix="`agileplus jobs list` shows job ids")
    return job


def latest_job(wp: WorkPackage) -> DispatchJob | None:
    return wp.jobs.order_by("-queued_at").first()


def list_jobs(*, feature=None, state: str | None = None, limit: int = 50) -> list[DispatchJob]:
    qs = DispatchJob.objects.select_related("feature", "wp").annotate(n_commits=Count("commits"))
    if feature is not None:
        qs = qs.filter(feature=feature)
    if state:
        qs = qs.filter(state=state)
    return list(qs.order_by("-queued_at")[:limit])


def log_lines(job: DispatchJob, *, tail: int | None = None, after_seq: int = 0,
              limit: int | None = None) -> list[JobLogLine]:
    """The job's log lines after ``after_seq`` in order: the last ``tail``, or the first ``limit``."""
    qs = JobLogLine.objects.filter(job=job, seq__gt=after_seq)
    if tail:
        return list(reversed(qs.order_by("-seq")[:tail]))
    return list(qs.order_by("seq")[:limit] if limit is not None else qs.order_by("seq"))


def job_summary(job: DispatchJob) -> dict:
    return {
        "id": job.id, "feature": job.feature.slug, "wp": job.wp.code, "harness": job.harness, "state": job.state,
        "attempt": job.attempt, "max_attempts": job.max_attempts, "worker": job.worker,
        "session_id": job.session_id, "queued_at": job.queued_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "exit_code": job.exit_code, "base_commit": job.base_commit,
        "branch": job.branch, "worktree": job.worktree, "current_activity": job.current_activity,
        "commits": [{"sha": c.sha, "message": c.message, "files": c.files} for c in job.commits.all()],
        "result": job.result, "usage": job.usage, "error": job.error, "timeout_seconds": job.timeout_seconds,
        "prompt_sizes": job.prompt_sizes, "manifest_hash": (job.manifest or {}).get("hash"),
    }


def agents_overview(local: dict | None = None) -> list[dict]:
    """Each harness: status (active/idle/unavailable), model, last heartbeat, sessions, per worker."""

    now = timezone.now()
    fresh = now - dt.timedelta(seconds=WORKER_STALE_SECONDS)
    workers = list(Worker.objects.filter(stopped_at__isnull=True))
    running = dict(
        DispatchJob.objects.filter(state__in=JobState.HELD).values_list("harness").annotate(n=Count("id"))
    )
    per_worker = {}
    for row in DispatchJob.objects.filter(state__in=JobState.HELD).values("harness", "worker").annotate(
            n=Count("id")):
        per_worker.setdefault(row["harness"], {})[row["worker"]] = row["n"]

    models = dict(AgentHarness.objects.values_list("name", "model"))
    rows = []
    for name in adapter_names():
        serving = [w for w in workers if (w.harnesses.get(name) or {}).get("available")]
        live = [w for w in serving if w.last_heartbeat and w.last_heartbeat >= fresh]
        last = max((w.last_heartbeat for w in serving if w.last_heartbeat), default=None)
        sessions = running.get(name, 0)
        local_info = (local or {}).get(name, {})
        if sessions:
            status = "active"
        elif live:
            status = "idle"
        elif local_info.get("available"):
            status = "available"
        else:
            status = "unavailable"
        rows.append({
            "name": name, "status": status, "model": models.get(name) or "",
            "last_heartbeat": last, "sessions": sessions,
            "workers": [{"hostname": w.hostname, "sessions": per_worker.get(name, {}).get(w.hostname, 0),
                         "version": (w.harnesses.get(name) or {}).get("version"),
                         "alive": w in live} for w in serving],
            "local": local_info,
        })
    return rows
