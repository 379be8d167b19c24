"""The merge queue: main only ever moves to a tree that passed the checks.

Approved WPs enter the queue of their repository (a database table). The holder of the
repository's merge lock (``merge.repo_lock``, a lease in the database, so one holder across all
workers and machines) takes the next ``batch_size`` entries, builds a candidate = current main +
each branch merged in queue order, runs governance and the secret scan on it and the review
checks on that exact checked-out tree, and moves main to that exact candidate commit with a
compare-and-swap push (refused if main moved meanwhile). A failing batch is bisected: the first
half is tested on its own (and merged if it passes), then the second half on top of it; a WP
that fails alone on main is ejected and goes back to its agent with the failing checks. The
batch size adapts: it doubles after a batch passes and halves after one fails.

An approved review enters the queue through the workflow's step after a review
(``workflow/services.py: merge_approved``); ``merge_now`` is what a person's ``move --to done``
does (``moves.move_wp``). ``merge.queue: off`` keeps the old direct merge (unsafe: main can break).
"""

from __future__ import annotations

import logging
import time

from django.db import IntegrityError, transaction

from agileplus.audit.models import AuditEntry
from agileplus.core.actors import Actor, parse_actor
from agileplus.core.errors import Conflict, DomainError
from agileplus.events import subjects
from agileplus.events.services import record_event
from agileplus.features.lifecycles import WPState
from agileplus.features.models import WorkPackage
from agileplus.features.services import TransitionResult
from agileplus.review.merge import MergeBusy, MergeConflict, repo_lock
from agileplus.review.merge_batches import BETWEEN_BATCHES_SECONDS, Entry, run_batch

log = logging.getLogger("agileplus.merge_queue")

SETTLE_TIMEOUT_SECONDS = 3600


class MergeRejected(Conflict):
    """The WP fails the checks when merged with the current main: it was ejected from the queue."""

    code = "merge_rejected"


# --- entering the queue -------------------------------------------------------------------


def active_entry(wp: WorkPackage) -> Entry | None:
    """The WP's entry while it waits or is tested in its queue (at most one: a unique constraint)."""
    return Entry.objects.filter(wp=wp, state__in=Entry.ACTIVE).first()


def enqueue(wp: WorkPackage, *, actor: Actor | str, send_back: bool = True) -> Entry:
    """Put an approved WP at the back of its repository's queue; an approval repeated (or
    delivered twice) finds the WP's entry already there."""
    actor = parse_actor(actor)
    repo = wp.feature.project.repo_url
    existing = active_entry(wp)
    if existing:
        return existing
    try:
        with transaction.atomic():
            entry = Entry.objects.create(repo=repo, feature=wp.feature, wp=wp, actor=str(actor), send_back=send_back)
            record_event(subjects.merge_queue_wp(wp.feature.slug, wp.code, "queued"),
                         {"wp": wp.code, "position": position(entry), "actor": str(actor)},
                         feature_id=wp.feature_id)
    except IntegrityError:  # the same approval from another process won the insert
        return Entry.objects.get(wp=wp, state__in=Entry.ACTIVE)
    return entry


def merge_now(wp: WorkPackage, actor: Actor, metadata: dict | None = None) -> TransitionResult:
    """A person moves an approved WP to done: it goes through the queue like any other and this
    returns once it is merged; ejected, it stays in review and the reason is raised."""
    entry = enqueue(wp, actor=actor, send_back=False)
    if metadata:
        Entry.objects.filter(pk=entry.pk).update(outcome={**entry.outcome, "metadata": metadata})
    entry = wait_settled(entry)
    if entry.state == Entry.MERGED:
        done = AuditEntry.objects.get(pk=entry.outcome["transition_entry_id"])
        unblocked = list(WorkPackage.objects.filter(pk__in=entry.outcome.get("unblocked", [])))
        return TransitionResult(entry.wp, entry.feature, WPState.FOR_REVIEW, WPState.DONE, done, unblocked)
    conflicts = entry.outcome.get("conflicts")
    if conflicts:
        raise MergeConflict(entry.reason, field="branch", conflicts=conflicts,
                            fix="re-dispatch the WP with the conflict as context (`agileplus wp transition … "
                                "--to doing` then `agileplus implement …`), or resolve it by hand")
    if entry.outcome.get("governance"):
        raise DomainError(entry.reason, field="governance", fix="the WP is blocked; see its audit entry for evidence")
    raise MergeRejected(entry.reason, field="checks", failed=entry.outcome.get("failed", []),
                        fix=f"see `agileplus queue {entry.feature.slug}` and the review report; send the WP back "
                            "to its agent (`agileplus move … --to doing`)")


def position(entry: Entry) -> int:
    """1 = next to be tested (entries being tested count as ahead)."""
    return Entry.objects.filter(repo=entry.repo, state__in=Entry.ACTIVE, pk__lte=entry.pk).count()


def process_queue(repo: str, *, wait_seconds: float = 1.0) -> int:
    """Run batches until the queue of ``repo`` is empty; returns how many. Another process holding
    the lock is draining it already: return at once (it re-checks the queue after releasing). The
    lock is released between batches so reviews of the same repository get their turn."""
    ran = 0
    while Entry.objects.filter(repo=repo, state__in=Entry.ACTIVE).exists():
        try:
            with repo_lock(repo, wait_seconds=wait_seconds, keep_alive=True):
                ran += run_batch(repo)
        except MergeBusy:
            return ran
        time.sleep(BETWEEN_BATCHES_SECONDS)
    return ran


def wait_settled(entry: Entry, *, timeout: float = SETTLE_TIMEOUT_SECONDS) -> Entry:
    """Until ``entry`` is merged or ejected, taking turns at running the queue."""
    deadline = time.monotonic() + timeout
    while True:
        process_queue(entry.repo, wait_seconds=2.0)
        entry.refresh_from_db()
        if entry.state not in Entry.ACTIVE:
            return entry
        if time.monotonic() > deadline:
            raise MergeBusy(f"{entry.wp.code} is still in the merge queue (position {position(entry)}) after "
                            f"{timeout:g}s", field="wp", fix="it stays queued; watch `agileplus queue`")
        time.sleep(0.2)


