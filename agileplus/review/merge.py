"""Merging a WP branch into main on the origin, serialized per repository across all
workers and machines by a database lock with a lease (not a process mutex)."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now

from agileplus.core.errors import Conflict, DomainError, RepositoryUnavailable
from agileplus.provenance.services import carry_agent_traces
from agileplus.review.models import MergeLock
from harnesses.git import (
    QUARANTINE_PREFIX,
    GitError,
    checked_out_push_fix,
    git,
    is_ancestor,
    mirror_path,
    redact_url,
    remote_url,
)

LOCK_LEASE_SECONDS = 120


class MergeConflict(Conflict):
    code = "merge_conflict"


class MergeBusy(Conflict):
    code = "merge_busy"


@dataclass
class MergeResult:
    merged: bool
    merge_sha: str
    commits: int = 0
    files: list[str] = field(default_factory=list)
    already: bool = False


def _lease() -> ExpressionWrapper:
    return ExpressionWrapper(Now() + dt.timedelta(seconds=LOCK_LEASE_SECONDS), output_field=DateTimeField())


@contextlib.contextmanager
def repo_lock(repo: str, *, wait_seconds: float = 120, keep_alive: bool = False) -> Iterator[str]:
    """Hold the merge lock of ``repo``. A holder that died loses it when its lease runs out.
    A leased row, not a database lock, because a merge runs git for minutes outside any
    transaction, from any worker, on SQLite as on PostgreSQL. With ``keep_alive`` a thread renews
    the lease every third of it, for holders that run checks longer than one lease (the merge queue)."""
    token = secrets.token_hex(8)
    repo = remote_url(repo)  # the lock row (shown in the admin) names the repository, not its token
    MergeLock.objects.get_or_create(repo=repo)
    deadline = time.monotonic() + wait_seconds
    while not MergeLock.objects.filter(repo=repo).filter(
        Q(holder="") | Q(lease_expires_at__lt=Now())
    ).update(holder=token, lease_expires_at=_lease()):
        if time.monotonic() > deadline:
            raise MergeBusy(f"another merge into {repo} has held the lock for over {wait_seconds:g}s",
                            field="repo", fix="retry when it finishes")
        time.sleep(0.1)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew_lease, args=(repo, token, stop), daemon=True) if keep_alive else None
    if renewer:
        renewer.start()
    try:
        yield token
    finally:
        stop.set()
        if renewer:
            renewer.join()
        MergeLock.objects.filter(repo=repo, holder=token).update(holder="", lease_expires_at=None)


def _renew_lease(repo: str, token: str, stop: threading.Event) -> None:
    try:
        while not stop.wait(LOCK_LEASE_SECONDS / 3):
            MergeLock.objects.filter(repo=repo, holder=token).update(lease_expires_at=_lease())
    finally:
        connection.close()


def push_if_unchanged(path: Path, main: str, expected: str, new_sha: str) -> bool:
    """Compare-and-swap of ``main`` on the origin: move it to ``new_sha`` only if it still points at
    ``expected``. False when main moved meanwhile (nothing is pushed)."""
    try:
        git("push", "--quiet", "--porcelain", f"--force-with-lease=refs/heads/{main}:{expected}", "origin",
            f"{new_sha}:refs/heads/{main}", cwd=path)
    except GitError as exc:
        git("fetch", "--quiet", "origin", cwd=path, check=False)
        if git("rev-parse", "--verify", "--quiet", f"origin/{main}", cwd=path, check=False) != expected:
            return False  # main moved meanwhile: the caller retests on the new main
        # Main did not move, so the origin refused the push itself: retrying cannot help.
        origin = git("config", "--get", "remote.origin.url", cwd=path, check=False)
        fix = checked_out_push_fix(origin, main)
        if fix:
            raise RepositoryUnavailable(
                f"the origin {redact_url(origin)} has {main} checked out and refuses the merge's push to it",
                field="repository", fix=f"{fix}  (git then updates its files on each merge), "
                                        "or make the origin a bare repository") from None
        raise RepositoryUnavailable(f"the origin {redact_url(origin)} refused the push of {main}: {str(exc)[-300:]}",
                                    field="repository", fix="check that this machine may push to the origin") from None
    git("fetch", "--quiet", "origin", cwd=path)
    return True


def _workspace_path(origin: str) -> Path:
    return mirror_path(settings.DATA_DIR / "merge", origin).with_suffix("")


@contextlib.contextmanager
def scratch_workspace(origin: str) -> Iterator[Path]:
    """A throwaway clone of the origin for checks that need not take turns in the merge workspace
    (a best-of-N candidate's score): its objects borrowed from the merge workspace when there is one."""
    parent = settings.DATA_DIR / "merge" / "scratch"
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="checks-", dir=parent))
    reference = _workspace_path(origin)
    try:
        git("clone", "--quiet", *(["--reference-if-able", str(reference)] if (reference / ".git").exists() else []),
            origin, str(folder / "repo"))
    except GitError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RepositoryUnavailable(f"cannot reach the repository {redact_url(origin)}: {str(exc)[-300:]}",
                                    field="repo_url", fix="check that this machine can read the project's repo_url") \
            from None
    try:
        yield folder / "repo"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def workspace(origin: str) -> Path:
    """A clean, non-bare clone of the origin used only for merges and review gates."""
    path = _workspace_path(origin)
    try:
        if not (path / ".git").exists():
            shutil.rmtree(path, ignore_errors=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            git("clone", "--quiet", origin, str(path))
        git("fetch", "--quiet", "--prune", "origin", cwd=path)
    except GitError as exc:
        raise RepositoryUnavailable(f"cannot reach the repository {redact_url(origin)}: {str(exc)[-300:]}",
                                    field="repo_url",
                                    fix="check the project's repo_url (agileplus feature import sets it) and "
                                        "that this machine can read it") from None
    return path


def reset_to(path: Path, ref: str) -> None:
    git("merge", "--abort", cwd=path, check=False)
    git("checkout", "--quiet", "--detach", ref, cwd=path)
    git("reset", "--quiet", "--hard", ref, cwd=path)
    git("clean", "-fdxq", cwd=path)


def branch_exists(path: Path, branch: str) -> bool:
    return bool(git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}", cwd=path, check=False))


def prepare_merge_result(path: Path, main: str, branch: str) -> tuple[str, str]:
    """Check out main merged with the branch (uncommitted merge for review gates). Returns (main sha, head sha).
    Raises MergeConflict naming the conflicting paths, with main untouched."""
    reset_to(path, f"origin/{main}")
    main_sha = git("rev-parse", "HEAD", cwd=path)
    head_sha = git("rev-parse", f"origin/{branch}", cwd=path)
    git("merge", "--no-ff", "--no-commit", f"origin/{branch}", cwd=path, check=False)
    conflicts = git("diff", "--name-only", "--diff-filter=U", cwd=path, check=False).splitlines()
    if conflicts:
        reset_to(path, f"origin/{main}")
        raise MergeConflict(
            f"{branch} conflicts with {main} in: {', '.join(conflicts)}",
            field="branch",
            fix="re-dispatch the WP with the conflict as context (`agileplus wp transition … --to doing` then "
                "`agileplus implement …`), or resolve it by hand",
            conflicts=conflicts,
        )
    return main_sha, head_sha


def merge_branch(origin: str, main: str, branch: str, message: str, *, strategy: str = "merge") -> MergeResult:
    path = workspace(origin)
    if not branch_exists(path, branch):
        raise DomainError(f"branch {branch} is not on the origin", field="branch",
                          fix="dispatch the WP first (`agileplus implement`)")
    head_sha = git("rev-parse", f"origin/{branch}", cwd=path)
    main_sha = git("rev-parse", f"origin/{main}", cwd=path)
    if _is_ancestor(path, head_sha, main_sha):
        return MergeResult(True, main_sha, already=True)
    commits = int(git("rev-list", "--count", f"{main_sha}..{head_sha}", cwd=path))
    files = [f for f in git("diff", "--name-only", f"{main_sha}...{head_sha}", cwd=path).splitlines() if f]
    reset_to(path, f"origin/{main}")
    if strategy == "fast-forward":
        if not _is_ancestor(path, main_sha, head_sha):
            raise MergeConflict(f"{branch} cannot fast-forward {main}", field="strategy",
                                fix="use strategy merge or rebase")
        new_sha = head_sha
    else:
        if strategy == "rebase":
            git("checkout", "--quiet", "-B", "agileplus-rebase", head_sha, cwd=path)
            if git("rebase", "--quiet", main_sha, cwd=path, check=False) or _rebasing(path):
                conflicts = git("diff", "--name-only", "--diff-filter=U", cwd=path, check=False).splitlines()
                git("rebase", "--abort", cwd=path, check=False)
                reset_to(path, f"origin/{main}")
                raise MergeConflict(f"{branch} does not rebase onto {main}: {', '.join(conflicts)}",
                                    field="branch", conflicts=conflicts)
            new_sha = git("rev-parse", "HEAD", cwd=path)
        else:
            prepare_merge_result(path, main, branch)
            git("commit", "--quiet", "--no-edit", "-m", message, cwd=path)
            new_sha = git("rev-parse", "HEAD", cwd=path)
    try:
        git("push", "--quiet", "origin", f"{new_sha}:refs/heads/{main}", cwd=path)
    except GitError as exc:
        reset_to(path, f"origin/{main}")
        fix = checked_out_push_fix(origin, main)
        if fix:  # not a conflict: the origin refuses pushes to its checked-out branch
            raise RepositoryUnavailable(
                f"the origin {origin} has {main} checked out and refuses the merge's push to it",
                field="repository", fix=f"{fix}  (git then updates its files on each merge), "
                                        "or make the origin a bare repository") from None
        raise MergeConflict(f"pushing {main} to the origin failed: {exc}", field="branch",
                            fix="main moved on the origin outside AgilePlus; retry the move") from None
    git("fetch", "--quiet", "origin", cwd=path)
    return MergeResult(True, new_sha, commits, files)


def rebase_branch(path: Path, main: str, branch: str) -> tuple[str, str]:
    """Rebase ``origin/<branch>`` onto ``origin/<main>`` in the workspace and push it back, with a
    lease so a concurrent push of the branch is never overwritten. Returns (old head, new head);
    raises MergeConflict naming the paths, leaving the branch as it was."""
    old = git("rev-parse", f"origin/{branch}", cwd=path)
    onto = git("rev-parse", f"origin/{main}", cwd=path)
    if _is_ancestor(path, onto, old):
        return old, old
    reset_to(path, f"origin/{main}")
    git("checkout", "--quiet", "-B", "agileplus-rebase", old, cwd=path)
    git("rebase", "--quiet", onto, cwd=path, check=False)
    if _rebasing(path):
        conflicts = git("diff", "--name-only", "--diff-filter=U", cwd=path, check=False).splitlines()
        git("rebase", "--abort", cwd=path, check=False)
        reset_to(path, f"origin/{main}")
        raise MergeConflict(f"{branch} does not rebase onto {main}: {', '.join(conflicts)}", field="branch",
                            conflicts=conflicts)
    new = git("rev-parse", "HEAD", cwd=path)
    try:
        git("push", "--quiet", f"--force-with-lease=refs/heads/{branch}:{old}", "origin",
            f"{new}:refs/heads/{branch}", cwd=path)
    finally:
        git("fetch", "--quiet", "--prune", "origin", cwd=path)
        reset_to(path, f"origin/{main}")
    carry_agent_traces(path, onto, old, new)  # the Agent Trace notes follow the rewritten commits
    return old, new


def set_aside_branch(path: Path, branch: str, salvage: str) -> str | None:
    """Move ``branch`` on the origin to the branch ``salvage`` in one atomic push: the salvage
    branch is created and ``branch`` deleted, only if ``branch`` still points where it was read (a
    lease: a push that lands meanwhile is not lost). Returns the commit set aside, or None when the
    origin has no ``branch``. Raises RepositoryUnavailable when the origin refuses, naming why."""
    head = git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}", cwd=path, check=False)
    source = f"refs/heads/{branch}"
    if not head:  # commits that broke governance were quarantined off the branches (dispatch/runner/commits.py)
        source = f"{QUARANTINE_PREFIX}{branch}"
        head = _fetch_ref(path, source)
    if not head:
        return None
    try:
        git("push", "--quiet", "--atomic", f"--force-with-lease={source}:{head}", "origin",
            f"{head}:refs/heads/{salvage}", f":{source}", cwd=path)
    except GitError as exc:
        raise RepositoryUnavailable(f"the origin refused to move {branch} to {salvage}: {str(exc)[-300:]}",
                                    field="branch", fix="check that this machine may push to the origin "
                                                        "(and delete branches there), then retry") from None
    finally:
        git("fetch", "--quiet", "--prune", "origin", cwd=path)
    return head


def _fetch_ref(path: Path, ref: str) -> str | None:
    """The origin's ``ref`` (outside refs/heads, which the workspace does not fetch), fetched."""
    if not git("ls-remote", "origin", ref, cwd=path, check=False).strip():
        return None
    git("fetch", "--quiet", "origin", f"+{ref}:{ref}", cwd=path)
    return git("rev-parse", "--verify", "--quiet", ref, cwd=path, check=False) or None


def _is_ancestor(path: Path, a: str, b: str) -> bool:
    return is_ancestor(path, a, b)


def _rebasing(path: Path) -> bool:
    git_dir = Path(git("rev-parse", "--git-dir", cwd=path))
    git_dir = git_dir if git_dir.is_absolute() else path / git_dir
    return (git_dir / "rebase-merge").exists() or (git_dir / "rebase-apply").exists()


def diff_size(repo: Path, base: str, tip: str) -> tuple[int, int]:
    """Lines added plus removed, and files touched, from ``base`` to ``tip`` (binary files: 0 lines)."""
    lines = files = 0
    for row in git("diff", "--numstat", base, tip, cwd=repo).splitlines():
        added, removed, _ = row.split("\t", 2)
        files += 1
        lines += (int(added) if added.isdigit() else 0) + (int(removed) if removed.isdigit() else 0)
    return lines, files
