"""Review and merge: the gate between an agent's branch and main.

``run_review`` runs the configured checks on a clean checkout of main merged with
the WP branch, stores the report and links it as evidence; with ``apply``, what follows
(approved → merge, rejected → doing) is the workflow's, owed in the report's transaction and
tried once committed (``after_review``, plugged in at start).
``merge_for_done`` is a move to done with the merge queue off: governance on every commit,
then the merge (serialized per repository); ``review/moves.py: move_wp`` is the entry point
every caller uses to move a WP.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import transaction

from agileplus.audit.chain import verify_chain
from agileplus.core import doorbells
from agileplus.core.actors import CI_AUTOMATION, SYSTEM, Actor, parse_actor
from agileplus.core.errors import DomainError, IllegalTransition, PermissionDenied
from agileplus.core.ports import Port
from agileplus.core.redaction import redact, redact_data
from agileplus.dispatch.models import DispatchJob, JobCommit, JobState
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Evidence, WorkPackage
from agileplus.features.services import record_wp_entry, transition_wp
from agileplus.review import checks as c
from agileplus.review import findings
from agileplus.review.governance import check_range
from agileplus.review.merge import (
    MergeConflict,
    branch_exists,
    diff_size,
    merge_branch,
    prepare_merge_result,
    rebase_branch,
    repo_lock,
    scratch_workspace,
    workspace,
)
from agileplus.review.models import MergeQueueEntry, ReviewReport
from harnesses.git import GitError, commits_since, git

log = logging.getLogger("agileplus.review")

# A review waits its turn behind merge-queue batches, each as long as the project's checks.
REVIEW_LOCK_WAIT_SECONDS = 1800
SECTION_ORDER = ["Deliverables Check", "Test Quality", "Code Quality", "Specification Compliance", "Governance"]


def review_config(wp: WorkPackage) -> dict:
    return dict((wp.feature.project.config or {}).get("review") or {})


def merge_config(wp: WorkPackage) -> dict:
    return dict((wp.feature.project.config or {}).get("merge") or {})


def job_to_review(wp: WorkPackage) -> DispatchJob | None:
    """The job whose branch is reviewed and merged: the latest that succeeded, else the latest.
    After a fresh start only jobs on the new branch count: the old ones' bases are another branch's."""
    jobs = wp.jobs.filter(branch=wp.fresh_branch) if wp.fresh_branch else wp.jobs.all()
    # Candidates (best of N) ran on branches of their own: the chosen one's job is moved onto the
    # WP's branch when chosen (``workflow/candidates.py``); the others are never reviewed.
    jobs = jobs.exclude(branch__startswith=f"{wp.branch_name}-c")
    return jobs.filter(state=JobState.SUCCEEDED).order_by("-finished_at").first() or \
        jobs.order_by("-queued_at").first()


def other_owned(wp: WorkPackage) -> dict[str, list[str]]:
    return {o.code: list(o.owned_paths) for o in wp.feature.work_packages.exclude(pk=wp.pk) if o.owned_paths}


def governance_for(wp: WorkPackage, repo, base: str, head: str):
    return check_range(repo, base, head, constraints=wp.feature.constraints or {}, wp_code=wp.code,
                       own=list(wp.owned_paths or []), others=other_owned(wp))


@dataclass
class Review:
    report: ReviewReport
    results: list[c.CheckResult] = field(default_factory=list)

    @property
    def approved(self) -> bool:
        return self.report.approved


def run_review(wp: WorkPackage, *, actor: Actor | str = CI_AUTOMATION, apply: bool = False,
               wait_for_merge: bool = True) -> Review:
    """Run every configured check; store the report; with ``apply`` the workflow's step after a
    review moves the WP (``after_review``: approved → the merge queue, or done via merge with the
    queue off; rejected → doing: changes requested). ``wait_for_merge``: return only once the
    queue merged or ejected it."""
    actor = parse_actor(actor)
    project = wp.feature.project
    branch = wp.branch_name
    # One merge workspace per origin: reviews and merges of a repository take turns. The job is
    # read under the lock: a merge that just rebased this branch moved its base.
    with repo_lock(project.repo_url, wait_seconds=REVIEW_LOCK_WAIT_SECONDS, keep_alive=True):
        job = job_to_review(wp)
        results, base, head_sha = _review_checks(wp, job, branch)
    return _store(wp, job, actor, results, base, head_sha, apply, wait_for_merge)


@dataclass
class BranchChecks:
    """The review's checks on main merged with a branch, and the branch's own change (base..head)."""

    results: list[c.CheckResult]
    base: str
    head: str
    diff_lines: int | None
    files: int | None


def check_branch(wp: WorkPackage, job: DispatchJob, branch: str) -> BranchChecks:
    """The review's checks (governance and the configured checks) on main merged with ``branch``,
    nothing stored: a best-of-N candidate's score card is built from them. In a scratch clone of
    its own, so candidates are scored in parallel (the merge workspace's lock is the review's)."""
    with scratch_workspace(wp.feature.project.repo_url) as path:
        results, base, head = _review_checks(wp, job, branch, path)
        lines, files = diff_size(path, base, head) if base and head else (None, None)
    return BranchChecks(results, base, head, lines, files)


def is_test_check(spec: dict) -> bool:
    return str(spec.get("name", "")).startswith("test") or bool(spec.get("parser"))


def test_counts(results: list[c.CheckResult]) -> dict | None:
    """The parsed counts of the test checks among ``results``: {"passed", "failed", "total"}."""
    figures = [r.figures for r in results if "total" in (r.figures or {}) and "passed" in r.figures]
    if not figures:
        return None
    return {k: sum(int(f.get(k) or 0) for f in figures) for k in ("passed", "failed", "total")}


def run_test_checks(wp: WorkPackage, root) -> tuple[dict | None, list[c.CheckResult]]:
    """The review's configured test checks, run in ``root`` (an agent's worktree when it finishes)."""
    results = [c.check_tests(root, spec) for spec in review_config(wp).get("checks") or [] if is_test_check(spec)]
    return test_counts(results), results


def _review_checks(wp: WorkPackage, job: DispatchJob | None, branch: str, path=None) -> tuple[list, str, str]:
    """``path``: the checkout to run in (default: the repository's merge workspace, under its lock)."""
    feature, project = wp.feature, wp.feature.project
    path = path or workspace(project.repo_url)
    if not branch_exists(path, branch):
        raise IllegalTransition(f"{wp.code} has no branch {branch} on the origin to review", field="wp",
                                fix=f"dispatch it first (`agileplus implement {feature.slug} --wp {wp.code}`), "
                                    "or see `agileplus logs` if the agent's push failed")
    try:
        main_sha, head_sha = prepare_merge_result(path, project.main_branch, branch)
    except MergeConflict as exc:
        return [c.CheckResult("merge", "Governance", False, [f"✗ {exc.message}"])], "", ""
    base = job.base_commit if job and job.base_commit else main_sha
    gov = governance_for(wp, path, base, head_sha)
    changed = list(gov.paths)
    results: list[c.CheckResult] = [findings.check_deliverables(path, list(wp.deliverables or []), changed)]
    results += list(tree_checks(review_config(wp), path, changed))
    results += unconfigured_findings(wp, path, changed, commits_since(path, base, head_sha), results)
    convention = [v for v in gov.violations if v.rule == "commit_message"]
    others = [v for v in gov.violations if v.rule != "commit_message"]
    results.append(c.CheckResult("commit_convention", "Governance", not convention,
                                 ["✓ Commit messages follow convention"] if not convention
                                 else [f"✗ {v.detail} ({v.commit[:7]})" for v in convention]))
    results.append(c.CheckResult("governance", "Governance", not others,
                                 ["✓ Only allowed paths modified", "✓ No forbidden files touched"] if not others
                                 else [f"✗ {v.detail}" for v in others]))

    chain = verify_chain(feature)
    results.append(c.CheckResult("audit", "Governance", chain.ok,
                                 ["✓ Audit trail intact" if chain.ok else "✗ Audit chain broken"]))
    return results, base, head_sha


def unconfigured_findings(wp: WorkPackage, path, changed: list[str], commits: list,
                          results: list[c.CheckResult]) -> list[c.CheckResult]:
    """What the report says where no check was configured (the example's config has none): the
    test files changed, the longest function written, each FR of the spec with its evidence."""
    sections = {r.section for r in results}
    found = [] if "Test Quality" in sections else [findings.changed_tests_result(changed)]
    if "Code Quality" not in sections:
        found.append(findings.function_length_result(path, changed))
    records = list(Evidence.objects.filter(wp=wp))
    texts = findings.evidence_texts(path, changed, commits, results, records)
    found.append(findings.compliance_result(wp.feature.spec, f"{wp.title}\n{wp.plan}", texts))
    return [r for r in found if r is not None]


def tree_checks(config: dict, path, changed: list[str]) -> Iterator[c.CheckResult]:
    """The configured checks that judge the checked-out tree (tests, commands, function length),
    one result at a time so a caller can report progress."""
    for spec in config.get("checks") or []:
        name = spec.get("name", "")
        if name in ("deliverables", "governance", "commit_convention"):
            continue
        if is_test_check(spec):
            yield c.check_tests(path, spec)
        elif name == "function_length":
            yield c.check_function_length(path, changed, int(spec.get("max_lines", 50)))
        elif spec.get("command"):
            yield c.check_command(path, spec, spec.get("section", "Code Quality"))


def render_report(wp: WorkPackage, results: list[c.CheckResult], approved: bool) -> str:
    lines = [f"Reviewing {wp.code}: {wp.title}"]
    for section in SECTION_ORDER:
        rows = [r for r in results if r.section == section]
        if rows:
            lines.append(section)
            for r in rows:
                lines += [f"  {line}" for line in r.lines]
    lines.append("Result: APPROVED ✓" if approved else "Result: CHANGES REQUESTED ✗")
    return "\n".join(lines)


def _store(wp, job, actor, results, base, head, apply, wait_for_merge=True) -> Review:
    approved = all(r.ok for r in results)
    text = render_report(wp, results, approved)
    with transaction.atomic():
        report = ReviewReport.objects.create(feature=wp.feature, wp=wp, job=job, actor=str(actor),
                                             approved=approved, base_sha=base, head_sha=head,
                                             checks=redact_data([r.as_dict() for r in results]),
                                             text=redact(text))
        refs = []
        for r in results:
            for fr in r.fr_ids:
                ev = Evidence.objects.create(feature=wp.feature, wp=wp, fr_id=fr, kind="review",
                                             reference=f"review:{report.pk}", summary=f"{r.name}: "
                                             f"{'pass' if r.ok else 'fail'}")
                refs.append({"fr_id": fr, "evidence_id": ev.pk})
        tests = test_counts(results)
        record_wp_entry(wp, actor=actor, transition=f"{wp.code}:review", evidence_refs=refs,
                        metadata={"report_id": report.pk, "approved": approved, "head": head,
                                  "failed": [r.name for r in results if not r.ok],
                                  **({"tests": tests} if tests else {})})
        if job is not None and tests:  # status shows the review's counts (main merged with the branch)
            job = DispatchJob.objects.select_for_update().get(pk=job.pk)
            job.result = {**(job.result or {}), "tests": tests}
            job.save(update_fields=["result"])
        # With apply, the step after the review is owed in the report's transaction: a process
        # that dies once it committed cannot lose it (the reaper runs it). Tried here at once.
        first_attempt = after_review(wp, report, wait_for_merge) if apply else None
    if first_attempt is not None:
        first_attempt()  # its error is the caller's, as the merge it waits for is
    return Review(report, results)


# What follows a review (approved → the merge queue, rejected → doing) is the workflow's
# (``workflow/services.py: record_after_review``, one layer up, on the merge queue, which is built
# on this module): it plugs its recorder in when Django loads the apps (``workflow/apps.py``), as
# it does ``transition_wp``'s. Called in the report's transaction with (wp, report,
# wait_for_merge), it writes the step as a ``FollowUp`` row and returns its first attempt.
after_review = Port("step after a review", "agileplus.workflow")


def ensure_may_approve(wp: WorkPackage, actor: Actor) -> None:
    if not actor.may_approve:
        raise PermissionDenied(f"{actor} may not move {wp.code} to done", field="actor",
                               fix="only a human or CI actor may approve work; an agent cannot approve its own")


def merge_for_done(wp: WorkPackage, actor: Actor) -> dict | None:
    """Merge the WP branch if it has one (a WP done by hand without an agent has none), the queue
    off: governance on every commit, then the merge (``moves.move_wp`` transitions after it)."""
    project = wp.feature.project
    if not wp.jobs.exists():
        return None
    branch = wp.branch_name
    with repo_lock(project.repo_url):
        job = job_to_review(wp)
        path = workspace(project.repo_url)
        head = _remote_head(path, branch)
        if head is None:
            raise DomainError(f"branch {branch} is not on the origin", field="branch",
                              fix="the agent's push failed: see `agileplus logs`")
        base = job.base_commit if job and job.base_commit else None
        if base:
            gov = governance_for(wp, path, base, head)
            if not gov.ok:
                _block_for_governance(wp, gov)
                raise DomainError(f"{wp.code} violates governance: " + "; ".join(v.detail for v in gov.violations[:5]),
                                  field="governance", fix="the WP is blocked; see its audit entry for evidence")
        title = f"Merge branch '{branch}' ({wp.code}: {wp.title})"
        try:
            result = merge_branch(project.repo_url, project.main_branch, branch, title,
                                  strategy=merge_config(wp).get("strategy", "merge"))
        except MergeConflict as exc:
            record_wp_entry(wp, actor=actor, transition=f"{wp.code}:merge_conflict",
                            metadata={"branch": branch, "conflicts": exc.details.get("conflicts", [])})
            raise
        if not result.already:
            rebase_waiting_branches(wp, path, result.files)
    return {"branch": branch, "merge_sha": result.merge_sha, "commits": result.commits,
            "files": len(result.files), "already_merged": result.already}


def rebase_waiting_branches(merged: WorkPackage, path, merged_files: list[str]) -> None:
    """After a merge, the branches waiting for review that touch a path the merge changed are
    rebased onto the new main (under the merge lock the caller holds), so they are reviewed and
    merged against what main now is. A branch that does not rebase keeps its head; its conflict is
    recorded, and the gate on main + branch sends it back to its agent with the conflict as context.
    Branches touching none of those paths are left alone: nothing of theirs can conflict, and the
    gate reviews main + branch anyway (rebasing every waiting branch on every merge cost a push per
    waiting branch per merge, quadratic on a wide DAG)."""
    main = merged.feature.project.main_branch
    onto = git_rev(path, f"origin/{main}")
    for wp in waiting_branches_touching(merged, set(merged_files)):
        branch = wp.branch_name
        if _remote_head(path, branch) is None or wp.jobs.filter(state__in=JobState.ACTIVE).exists():
            continue
        try:
            old, new = rebase_branch(path, main, branch)
        except MergeConflict as exc:
            record_wp_entry(wp, actor=SYSTEM, transition=f"{wp.code}:rebase_conflict",
                            metadata={"onto": onto, "after": merged.code,
                                      "conflicts": exc.details.get("conflicts", [])})
            continue
        except GitError as exc:  # the branch moved meanwhile (lease refused): the gate decides later
            log.warning("rebase of %s skipped: %s", branch, exc)
            continue
        if old != new:
            job = job_to_review(wp)
            if job is not None:  # governance and review now measure the branch from the new main
                DispatchJob.objects.filter(pk=job.pk).update(base_commit=onto)
            record_wp_entry(wp, actor=SYSTEM, transition=f"{wp.code}:rebased",
                            metadata={"onto": onto, "after": merged.code, "old_head": old, "new_head": new})


def waiting_branches_touching(merged: WorkPackage, paths: set[str]) -> list[WorkPackage]:
    """WPs in review (other than ``merged``) whose reported commits touch any of ``paths``; a WP
    with no file list on record counts as touching everything."""
    in_queue = MergeQueueEntry.objects.filter(state__in=MergeQueueEntry.ACTIVE).values("wp_id")
    waiting = list(merged.feature.work_packages.filter(state=WPState.FOR_REVIEW).exclude(pk=merged.pk)
                   .exclude(pk__in=in_queue))
    touched: dict[int, set[str]] = {wp.pk: set() for wp in waiting}
    for wp_id, files in JobCommit.objects.filter(job__wp__in=waiting).values_list("job__wp_id", "files"):
        touched[wp_id].update(files or [])
    return [wp for wp in waiting if not touched[wp.pk] or touched[wp.pk] & paths]


def git_rev(path, ref: str) -> str:
    return git("rev-parse", ref, cwd=path)


def _remote_head(path, branch: str) -> str | None:
    return git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}", cwd=path, check=False) or None


def _block_for_governance(wp: WorkPackage, gov) -> None:
    transition_wp(wp, WPState.BLOCKED, actor="system:governance",
                  metadata={"reason": "governance_violation", "base": gov.base, "head": gov.head,
                            "violations": [v.as_dict() for v in gov.violations[:50]]},
                  evidence_refs=[{"commit": v.commit, "path": v.path, "rule": v.rule}
                                 for v in gov.violations[:50]])


def send_back_after_conflict(wp: WorkPackage, conflict: MergeConflict) -> None:
    """An approved WP whose merge conflicted goes back to its agent, with the conflict as context
    (auto mode re-dispatches it on the for_review → doing transition)."""
    wp.refresh_from_db()
    if wp.state == WPState.FOR_REVIEW:
        transition_wp(wp, WPState.DOING, actor=CI_AUTOMATION,
                      metadata={"reason": "merge_conflict", "conflicts": conflict.details.get("conflicts", [])})


def request_review(wp: WorkPackage) -> None:
    """Ring the broker for an automated review of ``wp``; the task is rung by its name
    (``core/doorbells.py``): the task layer imports this module."""
    doorbells.ring("review.review_wp", args=[wp.pk], queue="agileplus")
