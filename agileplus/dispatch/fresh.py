"""A fresh start (`agileplus implement FEATURE --wp WP --fresh`): the WP starts over from the
current main on a new branch, its old branch set aside on the origin as
``salvage/<feature>-<WP>-<UTC time>`` (a branch any worker or person can fetch).

A retry otherwise continues the WP's branch, and a branch whose commits break governance can never
pass it (rewriting them is refused as a history rewrite): starting over is the way out, and the
way not to continue earlier work (commits, and any resumable agent session) at all. The WP's
branch is recorded on it (``WorkPackage.fresh_branch``): the runner, the review, governance (from
the new job's base commit) and the merge all read ``WorkPackage.branch_name``.

Order: every refusal first; then the branch moves on the origin under the repository's merge
lock (git cannot join a database transaction); then one transaction records the move on the WP
with its audit entry and event; then a second resets a blocked WP to planned and queues the job.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from agileplus.core.actors import Actor, parse_actor
from agileplus.core.errors import BlockedByDependency, IllegalTransition
from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.dispatch.selectors import block_entry
from agileplus.dispatch.services import check_request, enqueue_job
from agileplus.dispatch.sessions import discard_sessions
from agileplus.events import subjects
from agileplus.features.lifecycles import WPState
from agileplus.features.models import WorkPackage
from agileplus.features.services import blocking_dependencies, record_wp_entry, transition_wp
from agileplus.review.merge import repo_lock, set_aside_branch, workspace
from harnesses.git import branch_name as default_branch_name
from harnesses.git import git

FRESH_SUFFIX = re.compile(r"-fresh(\d+)$")


@dataclass(frozen=True)
class BranchMove:
    """Where the old work went, and where the new work starts."""

    old_branch: str
    branch: str
    main: str
    base: str  # main's commit the new branch starts from
    salvage_branch: str | None  # None: the origin had no old branch to set aside
    salvaged_sha: str | None

    def as_dict(self) -> dict:
        return {"old_branch": self.old_branch, "branch": self.branch, "main": self.main, "base": self.base,
                "salvage_branch": self.salvage_branch, "salvaged_sha": self.salvaged_sha}


@dataclass(frozen=True)
class FreshStart:
    move: BranchMove
    job: DispatchJob


def check_fresh_start(wp: WorkPackage) -> None:
    """Refuse a fresh start while an agent works on the WP, once it is in review or done, or
    while its dependencies are unfinished, naming the state and the fix."""
    fix_slug = f"{wp.feature.slug} --wp {wp.code}"
    active = wp.jobs.filter(state__in=JobState.ACTIVE).order_by("-queued_at").first()
    if active is not None:
        raise IllegalTransition(
            f"{wp.code} has an agent job {active.id} ({active.state}): a fresh start would leave it working "
            "on the old branch", field="wp",
            fix=f"`agileplus jobs cancel {active.id}`, then `agileplus implement {fix_slug} --fresh`")
    if wp.state == WPState.FOR_REVIEW:
        raise IllegalTransition(
            f"{wp.code} is for_review: its branch is being reviewed and merged", field="wp",
            fix=f"send it back first (`agileplus wp transition {wp.feature.slug} {wp.code} --to blocked`), "
                f"then `agileplus implement {fix_slug} --fresh`")
    if wp.state == WPState.DONE:
        raise IllegalTransition(f"{wp.code} is done: its branch is merged, there is nothing to start over",
                                field="wp", fix="plan the change as a new work package")
    blockers = blocking_dependencies(wp)
    if blockers:
        raise BlockedByDependency(
            f"{wp.code} is blocked by " + ", ".join(f"{b.code} ({b.state})" for b in blockers), field="wp",
            fix="finish the blocking work packages first", blocked_by=[b.code for b in blockers])


def start_fresh(wp: WorkPackage, *, actor: Actor | str, harness: str | None = None,
                timeout_seconds: int | None = None, retries: int | None = None, send: bool = True) -> FreshStart:
    """Set the WP's branch aside on the origin, give the WP a new branch from main, queue its job."""
    actor = parse_actor(actor)
    wp = WorkPackage.objects.select_related("feature__project").get(pk=wp.pk)  # its state now, not when read
    check_fresh_start(wp)
    check_request(wp, harness, timeout_seconds, retries)
    project = wp.feature.project
    old = wp.branch_name
    with repo_lock(project.repo_url):
        path = workspace(project.repo_url)
        new = _next_branch(path, wp)
        salvage = _salvage_name(path, wp)
        salvaged = set_aside_branch(path, old, salvage)
        base = git("rev-parse", f"refs/remotes/origin/{project.main_branch}", cwd=path)
    move = BranchMove(old_branch=old, branch=new, main=project.main_branch, base=base,
                      salvage_branch=salvage if salvaged else None, salvaged_sha=salvaged)
    _record_move(wp, move, actor)
    job = _reset_and_queue(wp, move, actor, harness=harness, timeout_seconds=timeout_seconds, retries=retries,
                           send=send)
    return FreshStart(move, job)


def _next_branch(path, wp: WorkPackage) -> str:
    """``feat/<feature>-<WP>-fresh<N>``, N one past the WP's current one and free on the origin. Never
    a name used before: a worker's mirror may still hold a local branch of that name to continue."""
    found = FRESH_SUFFIX.search(wp.fresh_branch)
    stem = default_branch_name(wp.feature.slug, wp.code)
    return _free_name(path, (f"{stem}-fresh{n}" for n in itertools.count(int(found.group(1)) + 1 if found else 1)))


def _salvage_name(path, wp: WorkPackage) -> str:
    """``salvage/<feature>-<WP>-<UTC time>`` (``-2``, ``-3``… when started over twice in a second)."""
    stem = f"salvage/{wp.feature.slug}-{wp.code}-{timezone.now():%Y%m%d-%H%M%S}"
    return _free_name(path, (stem if n == 1 else f"{stem}-{n}" for n in itertools.count(1)))


def _free_name(path, names: Iterator[str]) -> str:
    """The first of ``names`` that is no branch on the origin (as the merge workspace last fetched it)."""
    return next(n for n in names
                if not git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{n}", cwd=path, check=False))


def _record_move(wp: WorkPackage, move: BranchMove, actor: Actor) -> None:
    """The branch moved on the origin: the WP's new branch, the audit entry and the event, together."""
    # The entry locks the feature, then the WP row is written: the one lock order (as transition_wp).
    with transaction.atomic():
        payload = {"wp_id": wp.code, "actor": str(actor), **move.as_dict()}
        record_wp_entry(wp, actor=actor, transition=f"{wp.code}:fresh_start", metadata=move.as_dict(),
                        evidence_refs=[{"commit": move.salvaged_sha, "ref": f"refs/heads/{move.salvage_branch}"}]
                        if move.salvaged_sha else None,
                        subject=subjects.wp_fresh_start(wp.feature.slug, wp.code), payload=payload)
        WorkPackage.objects.filter(pk=wp.pk).update(fresh_branch=move.branch, updated_at=timezone.now())
        wp.fresh_branch = move.branch
        discard_sessions(wp)  # the old conversation describes the old branch: the next run starts a new one


def fresh_start_notes(wp: WorkPackage, move: BranchMove) -> list[str]:
    """The status note of the fresh session's prompt: it starts over, from where, and where the
    earlier work went. How the set-aside attempt ended (a timeout, a crash) is not this session's
    status and is left out (it read as if this run had timed out); a governance refusal is named,
    since the new session must not break the same rule."""
    note = f"This is a fresh start from {move.main} ({move.base[:7]}) on a new branch {move.branch}."
    if move.salvage_branch:
        note += (f" Earlier work on {move.old_branch} was set aside as {move.salvage_branch}: "
                 "do not bring it back.")
    last = wp.jobs.order_by("-queued_at").first()
    entry = block_entry(last) if last is not None else None
    metadata = (entry.metadata or {}) if entry is not None else {}
    if metadata.get("reason") != "governance_violation":
        return [note]
    refused = "; ".join(str(v.get("detail") or v.get("rule")) for v in metadata.get("violations", [])[:5]
                        if isinstance(v, dict))
    return [note, f"Governance refused the earlier work ({refused or 'see the audit entry'}): do not repeat it."]


def _reset_and_queue(wp: WorkPackage, move: BranchMove, actor: Actor, **options) -> DispatchJob:
    """A blocked WP back to planned, and its job queued with a note of what was set aside."""
    notes = fresh_start_notes(wp, move)
    with transaction.atomic():  # transition_wp locks the feature, then the WP: the one lock order
        current = WorkPackage.objects.get(pk=wp.pk)
        if current.state == WPState.BLOCKED:
            transition_wp(current, WPState.PLANNED, actor=actor, expected_source=WPState.BLOCKED,
                          metadata={"reason": "fresh_start", **move.as_dict()})
        job = enqueue_job(current, actor=actor, notes=notes, **options)
        job.result = {**job.result, "fresh_start": move.as_dict()}
        job.save(update_fields=["result"])
    return job
