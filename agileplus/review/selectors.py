"""Read-side of the merge queue: what the CLI, the API and the dashboard show."""

from __future__ import annotations

from agileplus.features.models import Feature, Project
from agileplus.review.merge_batches import queue_config
from agileplus.review.models import MergeQueue, MergeQueueEntry

RECENT = 10


def entry_as_dict(entry: MergeQueueEntry, position: int | None = None) -> dict:
    progress = entry.progress or {}
    return {
        "wp": entry.wp.code, "feature": entry.feature.slug, "title": entry.wp.title, "state": entry.state,
        "position": position, "batch": entry.batch or None, "batch_wps": progress.get("batch_wps", []),
        "candidate": entry.candidate_sha or None, "head": entry.head_sha or None,
        "checks": {"done": progress.get("checks_done", 0), "passed": progress.get("passed", []),
                   "failed": progress.get("failed", [])},
        "note": progress.get("note") or None, "reason": entry.reason or None, "merge_sha": entry.merge_sha or None,
        "actor": entry.actor, "enqueued_at": entry.enqueued_at.isoformat(), "updated_at": entry.updated_at.isoformat(),
    }


def merge_queues(feature: Feature | None = None, *, recent: int = RECENT) -> list[dict]:
    """One dict per repository queue (only ``feature``'s repository and entries when given): its
    settings, the adaptive batch size, the entries in order with their position, batch and check
    progress, and the latest merged or ejected entries with the reason."""
    if feature is not None:
        projects = [feature.project]
    else:
        repos = MergeQueueEntry.objects.values_list("repo", flat=True).distinct()
        projects = list(Project.objects.filter(repo_url__in=list(repos)).order_by("name"))
    out = []
    for project in projects:
        entries = MergeQueueEntry.objects.filter(repo=project.repo_url).select_related("wp", "feature")
        config = queue_config(project)
        queue = MergeQueue.objects.filter(repo=project.repo_url).first()
        active = list(entries.filter(state__in=MergeQueueEntry.ACTIVE).order_by("id"))
        settled = entries.exclude(state__in=MergeQueueEntry.ACTIVE).order_by("-updated_at", "-id")
        if feature is not None:
            settled = settled.filter(feature=feature)
        out.append({
            "repo": project.repo_url, "project": project.name, "main_branch": project.main_branch,
            "enabled": config.enabled, "batch_max": config.batch_max, "bisect": config.bisect,
            "batch_size": (queue.batch_size if queue and queue.batch_size else config.batch_max),
            "entries": [entry_as_dict(e, i) for i, e in enumerate(active, 1)
                        if feature is None or e.feature_id == feature.pk],
            "recent": [entry_as_dict(e) for e in settled[:recent]],
        })
    return out
