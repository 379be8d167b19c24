"""The DAG resolver's hands: with auto-dispatch on, a WP that reaches for_review is
reviewed (as ci:automation) and merged when approved; the WPs a merge unblocks are
queued at once, in parallel, up to the feature's and the farm's concurrency limits."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from agileplus.core.actors import Actor, parse_actor
from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Feature, WorkPackage

log = logging.getLogger("agileplus.autodispatch")


def auto_on(feature: Feature) -> bool:
    return bool((feature.agent_config or {}).get("auto_dispatch"))


def _limits(feature: Feature) -> tuple[int, int]:
    per_feature = int((feature.agent_config or {}).get("max_parallel") or 4)
    per_farm = int(getattr(settings, "AGILEPLUS_MAX_PARALLEL_JOBS", 16))
    return per_feature, per_farm


def ready_wps(feature: Feature) -> list[WorkPackage]:
    wps = feature.work_packages.filter(state=WPState.PLANNED).prefetch_related("dependencies").order_by("code")
    busy = set(DispatchJob.objects.filter(feature=feature, state__in=JobState.ACTIVE).values_list("wp_id", flat=True))
    return [w for w in wps if w.pk not in busy and all(d.state == WPState.DONE for d in w.dependencies.all())]


def queue_ready(feature: Feature, *, actor: Actor | str, harness: str | None = None,
                timeout_seconds: int | None = None, retries: int | None = None) -> list[DispatchJob]:
    from agileplus.dispatch.services import enqueue_job

    per_feature, per_farm = _limits(feature)
    running_feature = DispatchJob.objects.filter(feature=feature, state__in=JobState.ACTIVE).count()
    running_farm = DispatchJob.objects.filter(state__in=JobState.ACTIVE).count()
    room = max(0, min(per_feature - running_feature, per_farm - running_farm))
    from agileplus.review.conflicts import held_back

    candidates = ready_wps(feature)
    held = held_back(feature, candidates)
    for code, other in held.items():
        log.info("%s %s waits for %s: their owned paths overlap (conflict_policy: serialize)", feature.slug, code, other)
    jobs = []
    for wp in [w for w in candidates if w.code not in held][:room]:
        jobs.append(enqueue_job(wp, harness=harness or (feature.agent_config or {}).get("harness"), actor=actor,
                                timeout_seconds=timeout_seconds, retries=retries))
    return jobs


def start_feature(feature: Feature, *, harness: str | None, actor: Actor | str,
                  timeout_seconds: int | None = None, retries: int | None = None) -> list[DispatchJob]:
    """`implement --all`: turn auto-dispatch on and queue every ready WP."""
    actor = parse_actor(actor)
    with transaction.atomic():
        feature = Feature.objects.select_for_update().get(pk=feature.pk)
        config = dict(feature.agent_config or {})
        config["auto_dispatch"] = True
        config["auto_actor"] = str(actor)
        if harness:
            config["harness"] = harness
        if timeout_seconds:
            config["timeout_seconds"] = timeout_seconds
        feature.agent_config = config
        feature.save(update_fields=["agent_config", "updated_at"])
    # Anything already waiting for review is picked up too.
    for wp in feature.work_packages.filter(state=WPState.FOR_REVIEW):
        send_review(wp)
    return queue_ready(feature, actor=actor, harness=harness, retries=retries)


def send_review(wp: WorkPackage) -> None:
    from workers.review_tasks import review_wp

    review_wp.apply_async(args=[wp.pk], queue="agileplus")


def redispatch_with_review(wp: WorkPackage, feature: Feature) -> DispatchJob | None:
    """Changes requested: a fresh agent session gets the failing checks as context,
    up to ``max_review_cycles``; then the WP is blocked for a person to look at."""
    from agileplus.audit.models import AuditEntry
    from agileplus.dispatch.services import enqueue_job
    from agileplus.features.services import transition_wp
    from agileplus.review.models import ReviewReport

    conflict = AuditEntry.objects.filter(wp=wp, transition=f"{wp.code}:merge_conflict").order_by("-seq").first()
    cycles = ReviewReport.objects.filter(wp=wp, approved=False).count() + \
        AuditEntry.objects.filter(wp=wp, transition=f"{wp.code}:merge_conflict").count()
    limit = int((feature.agent_config or {}).get("max_review_cycles") or 2)
    if cycles >= limit:
        transition_wp(wp, WPState.BLOCKED, actor="system:agileplus",
                      metadata={"reason": "review_cycles_exhausted", "review_cycles": cycles})
        return None
    report = ReviewReport.objects.filter(wp=wp).first()
    failed = [line for check in (report.checks if report else []) if not check["ok"] for line in check["lines"]]
    notes = ["Changes requested by the automated review:", *failed[:20]]
    if conflict and (report is None or report.approved):
        paths = ", ".join((conflict.metadata or {}).get("conflicts", [])) or "(see the audit entry)"
        notes = [f"Your approved branch no longer merges: main changed and conflicts with it in {paths}.",
                 "Rebase onto the current main (git fetch; git rebase origin/main), resolve, and commit."]
    return enqueue_job(wp, harness=(feature.agent_config or {}).get("harness"),
                       actor=(feature.agent_config or {}).get("auto_actor") or "system:agileplus", notes=notes)


def on_wp_transitioned(sender, *, wp_id, feature_id, source, target, actor, unblocked_ids, **_kwargs) -> None:
    feature = Feature.objects.filter(pk=feature_id).first()
    if feature is None or not auto_on(feature):
        return
    try:
        if target == WPState.FOR_REVIEW:
            send_review(WorkPackage.objects.get(pk=wp_id))
        elif source == WPState.FOR_REVIEW and target == WPState.DOING:
            redispatch_with_review(WorkPackage.objects.get(pk=wp_id), feature)
        elif target == WPState.DONE or unblocked_ids:
            queue_ready(feature, actor=(feature.agent_config or {}).get("auto_actor") or "system:agileplus")
    except Exception:  # noqa: BLE001 - the transition already committed; the reaper and next event retry
        log.exception("auto-dispatch after %s -> %s failed", source, target)
