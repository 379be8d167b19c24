"""Read-side queries for jobs, logs and agents."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from django.db.models import Count
from django.utils import timezone

from agileplus.audit.models import AuditEntry
from agileplus.core.errors import NotFound
from agileplus.dispatch.models import AgentHarness, DispatchJob, JobLogLine, JobState, Worker
from agileplus.dispatch.prompt import PackagedPrompt
from agileplus.features.models import WorkPackage
from agileplus.features.selectors import wp_history
from harnesses.registry import adapter_names

WORKER_STALE_SECONDS = 30


def get_job(job_id: str) -> DispatchJob:
    job = DispatchJob.objects.select_related("feature", "wp").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"no job {job_id}", field="job", fix="`agileplus jobs list` shows job ids")
    return job


def latest_job(wp: WorkPackage) -> DispatchJob | None:
    return wp.jobs.order_by("-queued_at").first()


def block_entry(job: DispatchJob):
    """The audit entry that blocked ``job``'s WP (None if the job blocked nothing)."""
    return (AuditEntry.objects.filter(feature_id=job.feature_id, wp_id=job.wp_id, transition__endswith="->blocked",
                                      metadata__job_id=job.id).order_by("-seq").first())


def list_jobs(*, feature=None, state: str | None = None, limit: int = 50) -> list[DispatchJob]:
    qs = DispatchJob.objects.select_related("feature", "wp").annotate(n_commits=Count("commits"))
    if feature is not None:
        qs = qs.filter(feature=feature)
    if state:
        qs = qs.filter(state=state)
    return list(qs.order_by("-queued_at")[:limit])


def log_lines(job: DispatchJob, *, tail: int | None = None, after_seq: int = 0,
              limit: int | None = None, without: tuple[str, ...] = ()) -> list[JobLogLine]:
    """The job's log lines after ``after_seq`` in order: the last ``tail``, or the first ``limit``;
    none of the streams ``without``."""
    qs = JobLogLine.objects.filter(job=job, seq__gt=after_seq).exclude(stream__in=without)
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
        "commits": [{"sha": c.sha, "message": c.message, "files": c.files, "attempt": c.attempt}
                    for c in job.commits.all()],
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

    models = {**dict(AgentHarness.objects.values_list("name", "model")), **models_in_use()}
    rows = []
    for name in adapter_names():
        serving = [w for w in workers if (w.harnesses.get(name) or {}).get("available")]
        live = [w for w in serving if w.last_heartbeat and w.last_heartbeat >= fresh]
        last = max((w.last_heartbeat for w in serving if w.last_heartbeat), default=None)
        sessions = running.get(name, 0)
        local_info = (local or {}).get(name, {})
        if not models.get(name):  # the model the CLI reported in its last finished run
            finished = DispatchJob.objects.filter(harness=name, finished_at__isnull=False)
            latest = finished.order_by("-finished_at").first()
            models[name] = ((latest.result or {}).get("model") if latest else "") or ""
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
            "version": local_info.get("version") or next(
                ((w.harnesses.get(name) or {}).get("version") for w in serving
                 if (w.harnesses.get(name) or {}).get("version")), None),
            "last_heartbeat": last, "sessions": sessions,
            "workers": [{"hostname": w.hostname, "sessions": per_worker.get(name, {}).get(w.hostname, 0),
                         "version": (w.harnesses.get(name) or {}).get("version"),
                         "sandbox": (w.harnesses.get(name) or {}).get("sandbox", "unknown"),
                         "network": (w.harnesses.get(name) or {}).get("network", "model"),
                         "credentials": (w.harnesses.get(name) or {}).get("credentials") or {},
                         "alive": w in live} for w in serving],
            "local": local_info,
        })
    return rows


def job_model(job: DispatchJob) -> str:
    """The model a job runs: what the CLI reported, else what it was configured with."""
    return str((job.usage or {}).get("model") or (job.manifest or {}).get("model") or "")


def dispatch_screen(job: DispatchJob) -> list[str]:
    """The example's "Workspace setup" and "Prompt prepared" lines, from what the run recorded."""
    wp, feature = job.wp, job.feature
    prompt = PackagedPrompt(job.prompt or "", dict(job.prompt_sizes or {}), len(wp.deliverables or []))
    deps = [d.depends_on.code for d in wp.dependency_links.select_related("depends_on").order_by("depends_on__code")]
    # the example's WP03: it was blocked, and what it waited for was just merged by the farm
    unblocked = bool(deps) and wp_history(feature).get(wp.pk, {}).get("unblocked", False)
    main = feature.project.main_branch + (f" - includes {' and '.join(deps)}" if unblocked else "")
    lines = ["Workspace setup:", f"  Worktree: .worktrees/{Path(job.worktree).name}", f"  Branch: {job.branch}",
             f"  Base commit: {job.base_commit[:7]} ({main})", "Prompt prepared:"]
    summary = prompt.summary_lines(feature.slug, wp.code)
    if unblocked:
        summary.insert(-1, f"Constraint notes: {' and '.join(deps)} completion unblocks this")
    return lines + [f"  {line}" for line in summary]


def wait_agent_ready(job_id: str, *, poll: float = 0.2) -> bool:
    """Until the agent said something (a line of output, a session) or the job ended: True
    when it did, False when the job ended before the agent said anything."""
    while True:
        job = get_job(job_id)
        if JobLogLine.objects.filter(job_id=job_id, stream__in=("agent", "stdout", "stderr")).exists() or (
                job.session_id and job.session_id != job.id):
            return True
        if job.state in JobState.FINAL:
            return False
        time.sleep(poll)


def models_in_use(recent: int = 200) -> dict[str, str]:
    """Per harness, the model its latest run used: what the CLI itself reported in its stream,
    else what the run was configured with (the job's manifest)."""
    found: dict[str, str] = {}
    jobs = DispatchJob.objects.exclude(started_at=None).order_by("-started_at")[:recent]
    for harness, usage, manifest in jobs.values_list("harness", "usage", "manifest"):
        model = (usage or {}).get("model") or (manifest or {}).get("model")
        if model and harness not in found:
            found[harness] = str(model)
    return found
