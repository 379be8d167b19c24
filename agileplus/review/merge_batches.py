"""The merge queue's batches, run by the holder of the repository's merge lock: a candidate is
the current main with each queued branch merged in order (``_test``); governance and the secret
scan run on it and the review checks on that exact checked-out tree; main moves to the candidate
by a compare-and-swap push (``_move_main``), or a failing batch is bisected and a WP that fails
alone on main is ejected back to its agent (``_eject_failing``). Entering the queue and waiting
for it is ``review.merge_queue``.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from agileplus.core.actors import CI_AUTOMATION
from agileplus.core.errors import DomainError
from agileplus.core.redaction import redact, redact_data
from agileplus.events import subjects
from agileplus.events.services import record_event
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Project
from agileplus.features.project_config import QueueConfig, validate_merge_config
from agileplus.features.services import record_wp_entry, transition_wp
from agileplus.provenance.services import attest_main_move
from agileplus.review import checks as c
from agileplus.review.findings import check_deliverables
from agileplus.review.merge import push_if_unchanged, reset_to, workspace
from agileplus.review.models import MergeQueue, MergeQueueEntry, ReviewReport
from agileplus.review.secret_scan import scan_range
from agileplus.review.services import (
    _block_for_governance,
    governance_for,
    job_to_review,
    rebase_waiting_branches,
    render_report,
    review_config,
    tree_checks,
)
from harnesses.git import git, git_env, is_ancestor

log = logging.getLogger("agileplus.merge_queue")

Entry = MergeQueueEntry


def queue_config(project: Project) -> QueueConfig:
    return validate_merge_config((project.config or {}).get("merge"))


BETWEEN_BATCHES_SECONDS = 0.3  # a review polling for the lock (every 0.1 s) gets it between two batches


@dataclass
class Candidate:
    main_sha: str
    sha: str
    entries: list[Entry]
    results: list[c.CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.entries) and all(r.ok for r in self.results)


class _Batch:
    """One batch under the lock: bisection state and check results cached per tree (after the
    first half of a failing batch merges, the second half on top of it is the same tree)."""

    def __init__(self, repo: str, entries: list[Entry]) -> None:
        self.repo = repo
        self.id = secrets.token_hex(4)
        self.project = entries[0].feature.project
        self.path = workspace(repo)
        self.by_tree: dict[str, list[c.CheckResult]] = {}
        self.governed: set[int] = set()


def run_batch(repo: str) -> bool:
    """One batch of the queue (the caller holds the repository's lock). False when it is empty."""
    Entry.objects.filter(repo=repo, state=Entry.TESTING).update(state=Entry.QUEUED)  # a dead holder's batch
    queue, _ = MergeQueue.objects.get_or_create(repo=repo)
    first = Entry.objects.filter(repo=repo, state=Entry.QUEUED).select_related("feature__project", "wp").first()
    if first is None:
        return False
    config = queue_config(first.feature.project)
    size = min(queue.batch_size or config.batch_max, config.batch_max)
    entries = list(Entry.objects.filter(repo=repo, state=Entry.QUEUED)
                   .select_related("feature__project", "wp")[:size])
    batch = _Batch(repo, entries)
    for index, entry in enumerate(entries, 1):
        _update(entry, state=Entry.TESTING, batch=batch.id, progress={"batch_size": len(entries), "index": index})
        _event(entry, "testing", {"batch": batch.id, "batch_size": len(entries), "index": index})
    pending = [entries]
    first_try, passed_first = True, False
    while pending:
        group = pending.pop(0)
        candidate = _test(batch, group)
        if not candidate.entries:
            continue
        if candidate.ok:
            if not _move_main(batch, candidate):  # main moved meanwhile: all of it is tested again on it
                _requeue([e for g in [candidate.entries, *pending] for e in g])
                return True
            passed_first = passed_first or first_try
        elif len(candidate.entries) == 1:
            _eject_failing(candidate.entries[0], candidate)
            if pending:  # the breaker is out: what is left of the batch is tested together again
                pending = [[e for g in pending for e in g]]
        elif config.bisect:
            half = len(candidate.entries) // 2
            pending[:0] = [candidate.entries[:half], candidate.entries[half:]]
        else:
            pending[:0] = [[e] for e in candidate.entries]
        first_try = False
    queue.refresh_from_db()
    if passed_first:
        queue.batch_size, queue.batches_passed = min(config.batch_max, size * 2), queue.batches_passed + 1
    else:
        queue.batch_size, queue.batches_failed = max(1, size // 2), queue.batches_failed + 1
    queue.save(update_fields=["batch_size", "batches_passed", "batches_failed", "updated_at"])
    return True


def _test(batch: _Batch, group: list[Entry]) -> Candidate:
    """Build main + the group's branches (in queue order) and run the checks on it. Entries that
    cannot be part of it are settled or put back on the way."""
    path, main = batch.path, batch.project.main_branch
    git("fetch", "--quiet", "--prune", "origin", cwd=path)
    reset_to(path, f"origin/{main}")
    main_sha = git("rev-parse", "HEAD", cwd=path)
    included: list[Entry] = []
    for entry in group:
        entry.refresh_from_db()
        entry.wp.refresh_from_db()
        if entry.state != Entry.TESTING:
            continue
        if entry.wp.state != WPState.FOR_REVIEW:  # moved back (or blocked) by someone while it waited
            _update(entry, state=Entry.CANCELLED, reason=f"{entry.wp.code} left review ({entry.wp.state}) before "
                                                         "it was merged")
            continue
        head = git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{_branch(entry)}", cwd=path,
                   check=False)
        if not head:
            _eject(entry, f"branch {_branch(entry)} is not on the origin", outcome={"missing_branch": True})
            continue
        if entry.pk not in batch.governed and not _governance_ok(batch, entry, main_sha, head):
            continue
        batch.governed.add(entry.pk)
        if not _merge_into_candidate(path, entry, head, main_sha):
            continue
        _update(entry, head_sha=head)
        included.append(entry)
    candidate = Candidate(main_sha, git("rev-parse", "HEAD", cwd=path), included)
    if not included:
        return candidate
    for entry in included:
        _update(entry, candidate_sha=candidate.sha)
    tree = git("rev-parse", "HEAD^{tree}", cwd=path)
    if tree in batch.by_tree:  # the same tree was tested in this batch (the parent of a bisection)
        candidate.results = batch.by_tree[tree]
        _progress(candidate, candidate.results)
    else:
        candidate.results = _run_checks(batch, candidate)
        batch.by_tree[tree] = candidate.results
    return candidate


def _merge_into_candidate(path: Path, entry: Entry, head: str, main_sha: str) -> bool:
    """Merge one branch into the candidate being built. A branch conflicting with main itself is
    ejected; one conflicting only with a WP ahead of it in this batch waits for the next main."""
    if is_ancestor(path, head, "HEAD"):
        return True  # already on main (a holder died after pushing): nothing to merge, nothing to lose
    title = f"Merge branch '{_branch(entry)}' ({entry.wp.code}: {entry.wp.title})"
    git("merge", "--no-ff", "--no-edit", "-m", title, head, cwd=path, check=False)
    if not git("rev-parse", "--verify", "--quiet", "MERGE_HEAD", cwd=path, check=False):
        return True
    conflicts = git("diff", "--name-only", "--diff-filter=U", cwd=path, check=False).splitlines()
    git("merge", "--abort", cwd=path, check=False)
    with_main = conflicts_with(path, main_sha, head)
    if with_main:
        _eject(entry, f"{_branch(entry)} conflicts with {entry.feature.project.main_branch} in: "
                      f"{', '.join(with_main)}", outcome={"conflicts": with_main})
        return False
    _requeue([entry], note=f"conflicts with a WP ahead of it in the batch in: {', '.join(conflicts)}; "
                           "tried again on the next main")
    return False


def conflicts_with(path: Path, base: str, head: str) -> list[str]:
    """The paths where merging ``head`` into ``base`` conflicts (none: it merges cleanly), without
    touching the checkout."""

    proc = subprocess.run(["git", "merge-tree", "--write-tree", "--name-only", "--no-messages", base, head],
                          cwd=path, capture_output=True, text=True, env=git_env())
    if proc.returncode == 0:
        return []
    lines = [line for line in proc.stdout.splitlines()[1:] if line.strip()]
    return sorted(set(lines)) or ["(unknown path)"]


def _governance_ok(batch: _Batch, entry: Entry, main_sha: str, head: str) -> bool:
    job = job_to_review(entry.wp)
    base = job.base_commit if job and job.base_commit else git("merge-base", main_sha, head, cwd=batch.path)
    gov = governance_for(entry.wp, batch.path, base, head)
    if gov.ok:
        return True
    details = "; ".join(v.detail for v in gov.violations[:5])
    _eject(entry, f"{entry.wp.code} violates governance: {details}", outcome={"governance": True}, notify=False)
    _block_for_governance(entry.wp, gov)
    return False


def _run_checks(batch: _Batch, candidate: Candidate) -> list[c.CheckResult]:
    """Deliverables of each WP (when the review lists them), the secret scan of everything the
    candidate adds to main, and the configured review checks on the candidate's exact tree, with
    progress after each."""
    path = batch.path
    changed = [f for f in git("diff", "--name-only", candidate.main_sha, candidate.sha, cwd=path).splitlines() if f]
    config = review_config(candidate.entries[0].wp)
    results: list[c.CheckResult] = []
    configured = {spec.get("name") for spec in config.get("checks") or []}
    for entry in candidate.entries if "deliverables" in configured else []:
        check = check_deliverables(path, list(entry.wp.deliverables or []), changed)
        check.name = f"deliverables {entry.wp.code}"
        results.append(check)
    findings = scan_range(path, candidate.main_sha, candidate.sha)
    results.append(c.CheckResult("secret_scan", "Governance", not findings,
                                 [f"✗ {f.describe()}" for f in findings] or ["✓ No secrets added"]))
    _progress(candidate, results)
    for check in tree_checks(config, path, changed):
        results.append(check)
        _progress(candidate, results)
    return results


def _progress(candidate: Candidate, results: list[c.CheckResult]) -> None:
    progress = {"candidate": candidate.sha, "main": candidate.main_sha, "batch_wps": _codes(candidate.entries),
                "checks_done": len(results), "passed": [r.name for r in results if r.ok],
                "failed": [r.name for r in results if not r.ok]}
    for entry in candidate.entries:
        _update(entry, progress={**entry.progress, **progress})
        _event(entry, "progress", progress)


def _move_main(batch: _Batch, candidate: Candidate) -> bool:
    """Compare-and-swap main to the candidate, then record it: one audit entry per main move (per
    feature chain in the batch) naming the WPs, the candidate and the checks that passed; then each
    WP moves to done as its approver."""
    path, main = batch.path, batch.project.main_branch
    if not push_if_unchanged(path, main, candidate.main_sha, candidate.sha):
        return False
    evidence = [{"name": r.name, "figures": r.figures} for r in candidate.results]
    # The one merge commit per WP of the batch, in order: main's first-parent history gained these,
    # and main points at the last (the tested candidate).
    first_parent = git("rev-list", "--first-parent", "--reverse", f"{candidate.main_sha}..{candidate.sha}",
                       cwd=path).splitlines()
    by_feature: dict[int, list[Entry]] = {}
    for entry in candidate.entries:
        by_feature.setdefault(entry.feature_id, []).append(entry)
    for entries in by_feature.values():
        meta = {"main": main, "from": candidate.main_sha, "candidate": candidate.sha, "batch": batch.id,
                "first_parent": first_parent, "wps": _codes(entries), "batch_wps": _codes(candidate.entries),
                "checks_passed": evidence}
        record_wp_entry(entries[0].wp, actor=CI_AUTOMATION, transition="merge_queue:main_moved", metadata=meta,
                        subject=subjects.merge_main_moved(entries[0].feature.slug), payload=meta)
    files: set[str] = set()
    for entry in candidate.entries:
        files |= _finish_merged(batch, entry, candidate)
    attest_main_move(path, batch.repo, main, candidate.main_sha, candidate.sha, candidate.entries, candidate.results)
    for entries in by_feature.values():
        rebase_waiting_branches(entries[0].wp, path, sorted(files))
    return True


def _finish_merged(batch: _Batch, entry: Entry, candidate: Candidate) -> set[str]:
    path = batch.path
    files = {f for f in git("diff", "--name-only", f"{candidate.main_sha}...{entry.head_sha}", cwd=path,
                            check=False).splitlines() if f}
    commits = int(git("rev-list", "--count", f"{candidate.main_sha}..{entry.head_sha}", cwd=path) or 0)
    merge = {"branch": _branch(entry), "merge_sha": candidate.sha, "commits": commits, "files": len(files),
             "already_merged": commits == 0, "queue": {"batch": batch.id, "candidate": candidate.sha,
                                                       "with": _codes(candidate.entries)}}
    outcome = {**entry.outcome, "merge": merge}
    try:
        result = transition_wp(entry.wp, WPState.DONE, actor=entry.actor,
                               metadata={**entry.outcome.get("metadata", {}), "merge": merge})
        outcome.update(transition_entry_id=result.entry.pk, unblocked=[u.pk for u in result.unblocked])
    except DomainError as exc:  # merged on main, but the WP was moved meanwhile: say so, keep going
        log.warning("%s merged but not moved to done: %s", entry.wp.code, exc)
        outcome["transition_error"] = exc.as_dict()
    _update(entry, state=Entry.MERGED, merge_sha=candidate.sha, outcome=outcome)
    _event(entry, "merged", {"candidate": candidate.sha, "batch": batch.id, "with": _codes(candidate.entries)})
    return files


def _eject_failing(entry: Entry, candidate: Candidate) -> None:
    """The WP fails the checks on main alone: a review report with the failing checks, and back to
    its agent (the changes-requested path) when it came from the automated review."""
    failed = [r for r in candidate.results if not r.ok]
    why = c.CheckResult("merge_queue", "Governance", False, [
        f"✗ Fails when merged with the current main ({candidate.main_sha[:7]}): candidate {candidate.sha[:7]}"])
    results = [why, *candidate.results]
    report = _changes_requested(entry, results, base=candidate.main_sha)
    names = [r.name for r in failed]
    _eject(entry, f"{entry.wp.code} fails {', '.join(names)} when merged with main {candidate.main_sha[:7]}",
           outcome={"failed": names, "report_id": report.pk, "candidate": candidate.sha,
                    "failing_lines": redact_data([line for r in failed for line in r.lines][:20])})


def _eject(entry: Entry, reason: str, *, outcome: dict, notify: bool = True) -> None:
    """Out of the queue, with the reason recorded (audit entry + event); sent back to its agent when
    it came from the automated review."""
    wp = entry.wp
    sent_back = notify and entry.send_back
    if sent_back and outcome.get("conflicts"):  # the agent gets it as review feedback, like any failed check
        results = [c.CheckResult("merge", "Governance", False, [f"✗ {reason}"])]
        report = _changes_requested(entry, results)
        outcome = {**outcome, "report_id": report.pk}
    _update(entry, state=Entry.EJECTED, reason=reason, outcome={**entry.outcome, **outcome})
    # A person's merge that conflicts is recorded as before the queue (merge_conflict, WP stays in review).
    conflict = outcome.get("conflicts") and not sent_back
    transition = f"{wp.code}:merge_conflict" if conflict else f"{wp.code}:merge_ejected"
    meta = {"reason": reason, "branch": _branch(entry), "batch": entry.batch, **outcome}
    record_wp_entry(wp, actor=CI_AUTOMATION, transition=transition, metadata=meta,
                    subject=subjects.merge_queue_wp(entry.feature.slug, wp.code, "ejected"), payload=meta)
    if not sent_back:
        return
    wp.refresh_from_db()
    if wp.state == WPState.FOR_REVIEW:
        transition_wp(wp, WPState.DOING, actor=CI_AUTOMATION,
                      metadata={"reason": "changes_requested", "merge_queue": reason,
                                **{k: v for k, v in outcome.items() if k in ("conflicts", "report_id", "failed")}})


def _requeue(entries: list[Entry], note: str = "") -> None:
    for entry in entries:
        entry.refresh_from_db()
        if entry.state == Entry.TESTING:
            _update(entry, state=Entry.QUEUED, batch="", progress={"note": note} if note else {})


def _changes_requested(entry: Entry, results: list[c.CheckResult], base: str = "") -> ReviewReport:
    """The review report an ejected WP goes back with (check output redacted like any review's)."""
    return ReviewReport.objects.create(
        feature=entry.feature, wp=entry.wp, actor=str(CI_AUTOMATION), approved=False, base_sha=base,
        head_sha=entry.head_sha, checks=redact_data([r.as_dict() for r in results]),
        text=redact(render_report(entry.wp, results, False)))


def _branch(entry: Entry) -> str:
    return entry.wp.branch_name


def _codes(entries: list[Entry]) -> list[str]:
    return [e.wp.code for e in entries]


def _update(entry: Entry, **values) -> None:
    for key, value in values.items():
        setattr(entry, key, value)
    entry.save(update_fields=[*values, "updated_at"])


def _event(entry: Entry, kind: str, payload: dict) -> None:
    with transaction.atomic():
        record_event(subjects.merge_queue_wp(entry.feature.slug, entry.wp.code, kind),
                     {"wp": entry.wp.code, "state": entry.state, **payload}, feature_id=entry.feature_id)
