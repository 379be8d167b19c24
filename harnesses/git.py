"""The git layer a worker runs agents in: a local mirror of the project origin per
worker (no shared disk between machines), one worktree and branch per WP, commit
detection, pushes back to the origin, and salvage before any cleanup.

Plain ``git`` subprocesses: they are the fastest path and behave exactly as users
expect from their own repositories. Each one is run hardened by ``harnesses.git_command``
(``git_run``, ``git``: hooks and executable config off, the origin's credentials out of every
command line and message); ``git``, ``git_run``, ``GitError``, ``redact_url`` and ``git_env`` are
importable from here too.

Git is a trust boundary (the agent is untrusted code with a shell):

- The agent works in its OWN repository (``agent_clone``): a fresh ``git init`` whose object
  store borrows the mirror's objects through ``objects/info/alternates`` (read-only inside the
  sandbox), holding only its WP branch and no remote. Nothing it can write is a git directory the
  worker later runs a command in: a linked worktree would share the mirror's config and hooks
  (``git rev-parse --git-common-dir``), and a hard-linked clone would share the mirror's object files.
- The worker never runs git inside the agent's repository. It *fetches* the WP branch out of it
  into its own mirror (``fetch_agent_branch``): git's ``upload-pack`` is the one command git
  documents as safe to run against an untrusted repository (it ignores hooks and the repository's
  executable config), and its command line is fixed (``SAFE_UPLOAD_PACK``) with protected
  overrides too. Salvage reads the agent's files with the mirror as the git directory, so the
  agent's config is never read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harnesses.git_command import SAFE_UPLOAD_PACK, GitError, git, git_run, remote_url
from harnesses.git_command import git_env as git_env  # re-exported (`as`): imported from here
from harnesses.git_command import redact_url as redact_url


def init_one_commit_repo(path: Path, *, name: str, email: str, readme: str) -> Path:
    """A repository on ``main`` with one commit (``README.md``) and its own committer identity:
    the scratch origin of ``agents check``, and of the tests that run agent CLIs."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", cwd=path)
    git("config", "user.name", name, cwd=path)
    git("config", "user.email", email, cwd=path)
    (path / "README.md").write_text(readme)
    git("add", "README.md", cwd=path)
    git("commit", "-qm", "initial", cwd=path)
    return path


@dataclass
class Commit:
    sha: str
    message: str
    files: list[str]


def branch_name(feature_slug: str, wp_code: str) -> str:
    return f"feat/{feature_slug}-{wp_code}"


def worktree_name(feature_slug: str, wp_code: str) -> str:
    return f"{feature_slug}-{wp_code}"


def mirror_path(root: Path, origin: str) -> Path:
    origin = remote_url(origin)  # one mirror per repository, whatever token reaches it
    digest = hashlib.sha256(origin.encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(origin.rstrip("/")).name or "repo")
    return root / "mirrors" / f"{name}-{digest}.git"


def origin_ref(branch: str) -> str:
    return f"refs/remotes/origin/{branch}"


@contextlib.contextmanager
def mirror_lock(path: Path):
    """Serialize clone/fetch/worktree changes of one mirror between this worker's processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_mirror(root: Path, origin: str) -> Path:
    """A bare mirror of ``origin`` under ``root``, fetched up to date."""
    path = mirror_path(root, origin)
    with mirror_lock(path):
        _ensure_mirror(path, origin)
    return path


def _ensure_mirror(path: Path, origin: str) -> None:
    origin = remote_url(origin)
    if not (path / "HEAD").exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        git("clone", "--bare", "--quiet", origin, str(tmp))
        tmp.rename(path)
        # Remote-tracking refs, not local heads: a fetch must never move a branch that a
        # worktree has checked out.
        git("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*", cwd=path)
    git("fetch", "--quiet", "--prune", "origin", cwd=path)


def create_worktree(mirror: Path, worktrees_root: Path, name: str, branch: str, base_ref: str, *,
                    reset: bool = False) -> tuple[Path, str, str]:
    """The agent's own repository ``worktrees_root/name`` on ``branch`` from ``base_ref``;
    returns (path, base sha, start sha: the branch head the agent starts from).
    See the module docstring for why it is not a linked worktree.

    An existing branch (a retry, partial work pushed before) is continued, not reset, unless
    ``reset`` (a replay: the same base as the original run; the old head stays reachable as
    ``refs/agileplus/replaced/<branch>``). A leftover repository with uncommitted work is
    salvaged to ``refs/agileplus/salvage/<name>-<time>`` before it is removed.
    """
    with mirror_lock(mirror):
        return _create_worktree(mirror, worktrees_root / name, branch, base_ref, reset=reset)


def _create_worktree(mirror: Path, path: Path, branch: str, base_ref: str, *,
                     reset: bool = False) -> tuple[Path, str, str]:
    base_sha = git("rev-parse", f"{base_ref}^{{commit}}", cwd=mirror)
    if path.exists() or path.is_symlink():
        _salvage_leftover(mirror, path, branch)
        remove_worktree(mirror, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _prune_linked_worktrees(mirror)
    start = base_sha
    local, remote = _branch_heads(mirror, branch)
    if reset:
        for old in (local, remote):
            if old:
                git("update-ref", f"refs/agileplus/replaced/{branch}", old, cwd=mirror)
        git("update-ref", f"refs/heads/{branch}", base_sha, cwd=mirror)
    else:
        if remote and not local:
            git("update-ref", f"refs/heads/{branch}", remote, cwd=mirror)
            local = remote
        if local:
            start = local
            base_sha = git("merge-base", local, base_sha, cwd=mirror)
        else:
            git("update-ref", f"refs/heads/{branch}", base_sha, cwd=mirror)
    agent_clone(mirror, path, branch, start)
    return path, base_sha, start


def _branch_heads(mirror: Path, branch: str) -> tuple[str, str]:
    """(local, remote-tracking) head of ``branch`` in the mirror, "" where absent: one git command."""
    local, remote = f"refs/heads/{branch}", origin_ref(branch)
    out = git("for-each-ref", "--format=%(refname)%00%(objectname)", local, remote, cwd=mirror)
    # for-each-ref also lists refs below a pattern (refs/heads/<branch>/…): only exact names count.
    heads = dict(line.split("\0", 1) for line in out.splitlines() if "\0" in line)
    return heads.get(local, ""), heads.get(remote, "")


def _prune_linked_worktrees(mirror: Path) -> None:
    """Linked worktrees of the previous design: git keeps their records under ``worktrees/``."""
    if (mirror / "worktrees").is_dir():
        git("worktree", "prune", cwd=mirror, check=False)


def _salvage_leftover(mirror: Path, path: Path, branch: str) -> None:
    """A repository left at ``path`` (a crashed run, or the same feature/WP name in another project)
    keeps its work in the mirror it borrows objects from, if that is one of this worker's mirrors:
    the same mirror continues its branch; another gets it as ``refs/agileplus/salvage/<name>-<time>``."""
    with contextlib.suppress(OSError, IndexError):
        owner = Path((path / ".git" / "objects" / "info" / "alternates").read_text().splitlines()[0]).parent
        if owner.resolve() == mirror.resolve():
            with contextlib.suppress(GitError):
                fetch_agent_branch(mirror, path, branch)
                salvage(mirror, path, branch, f"refs/agileplus/salvage/{path.name}-{int(time.time())}")
        elif owner.resolve().parent == mirror.resolve().parent and (owner / "HEAD").exists():
            ref = f"refs/agileplus/salvage/{path.name}-{int(time.time())}"
            with contextlib.suppress(GitError):
                git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--upload-pack", SAFE_UPLOAD_PACK,
                    str(agent_git_dir(path)), f"+refs/heads/{branch}:{ref}", cwd=owner)
                salvage(owner, path, branch, ref, tip=ref)


def agent_clone(mirror: Path, path: Path, branch: str, start: str) -> None:
    """A fresh repository at ``path`` with only ``branch`` at ``start`` checked out, objects borrowed
    from the mirror (alternates), no remote, no hooks. Written by the worker before the agent runs."""
    git("init", "--quiet", "--template=", "-b", branch, str(path))
    git_dir = path / ".git"
    (git_dir / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (git_dir / "objects" / "info" / "alternates").write_text(f"{(mirror / 'objects').resolve()}\n")
    # The identity the agent commits as, written by the worker like the alternates (no git per key).
    with open(git_dir / "config", "a", encoding="utf-8") as config:
        config.write(f"[user]\n\tname = {AGENT_IDENTITY[0]}\n\temail = {AGENT_IDENTITY[1]}\n")
    # HEAD names the unborn ``branch``: the reset creates it at ``start`` and checks it out.
    git("reset", "--quiet", "--hard", start, cwd=path)


def agent_git_dir(path: Path) -> Path:
    """The agent repository's git directory, refusing a ``.git`` the agent replaced by a
    symlink or a ``gitdir:`` file (it would point the worker's fetch elsewhere)."""
    git_dir = path / ".git"
    if git_dir.is_symlink() or not git_dir.is_dir():
        raise GitError(f"{git_dir} is no longer a git directory (the agent replaced it)")
    return git_dir


def agent_refs(path: Path) -> dict[str, str]:
    """Every ref of the agent's repository (name → sha), read through the safe upload-pack."""
    out = git("ls-remote", "--upload-pack", SAFE_UPLOAD_PACK, str(agent_git_dir(path)), cwd=path.parent)
    refs = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        if name and name != "HEAD":
            refs[name] = sha
    return refs


def fetch_agent_branch(mirror: Path, path: Path, branch: str) -> None:
    """Copy the agent's ``branch`` into the mirror's ``refs/heads/<branch>`` (objects and ref, by
    fetch: nothing of the agent's repository executes)."""
    source = str(agent_git_dir(path))
    for attempt in range(3):  # another job's fetch into the same mirror may hold a lock for a moment
        try:
            git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-auto-gc", "--upload-pack",
                SAFE_UPLOAD_PACK, source, f"+refs/heads/{branch}:refs/heads/{branch}", cwd=mirror)
            break
        except GitError:
            if attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))


def foreign_refs(path: Path, branch: str, before: dict[str, str]) -> list[str]:
    """Refs the agent created, moved or deleted other than its WP branch (ignored, reported)."""
    after = agent_refs(path)
    names = (set(before) | set(after)) - {f"refs/heads/{branch}"}
    return sorted(n for n in names if before.get(n) != after.get(n))


def log_fields(repo: Path, fields: list[str], *args: str, check: bool = True) -> list[list[str]]:
    """``git log *args``, one list per commit of the values of ``fields`` (pretty-format
    placeholders such as ``%H``, ``%s``, ``%B``), whatever follows the format (``--name-only``)
    appended to the last. The separators are random per call: commit messages are the agent's
    text and may carry any fixed separator (``\\x1e``, ``\\x1f``, a line break ``splitlines``
    honours) to hide a secret from the scan, a subject from the convention, or a file from a report."""
    mark = secrets.token_hex(12)
    record, field = f"<{mark}:commit>", f"<{mark}:field>"
    out = git("log", f"--format={record}{field.join(fields)}{field}", *args, cwd=repo, check=check)
    found = []
    for text in out.split(record)[1:]:
        values = text.split(field)
        found.append([*values[:len(fields)], field.join(values[len(fields):])])
    return found


def commits_since(repo: Path, base: str, tip: str = "HEAD") -> list[Commit]:
    """Commits on ``tip`` after ``base``, oldest first, with the files each changed."""
    return [Commit(sha, message.strip(), [f for f in files.split("\n") if f.strip()])
            for sha, message, files in log_fields(repo, ["%H", "%B"], "--reverse", "--name-only", f"{base}..{tip}",
                                                  check=False)]


def head(repo: Path, tip: str = "HEAD") -> str:
    return git("rev-parse", tip, cwd=repo)


def files_changed(repo: Path, base: str, tip: str = "HEAD") -> list[str]:
    out = git("diff", "--name-only", f"{base}..{tip}", cwd=repo, check=False)
    return [f for f in out.splitlines() if f]


def salvage(mirror: Path, path: Path, branch: str, ref: str, *, tip: str | None = None,
            leave_out: tuple[str, ...] = ()) -> str | None:
    """Commit the agent's uncommitted files (tracked and untracked) onto the mirror's ``branch`` as
    ``ref``, without touching the branch; ``leave_out``: paths of the CLI's own scratch files. The
    mirror is the git directory and the agent's folder only the work tree: the agent's index,
    config and hooks are never read."""
    if not path.is_dir() or not (path / ".git").exists():
        return None
    # The tip and its tree in one command; a tip that does not exist has nothing to salvage onto.
    tip = tip or f"refs/heads/{branch}"
    read = git_run(["rev-parse", f"{tip}^{{commit}}", f"{tip}^{{tree}}"], cwd=mirror)
    if read.returncode != 0 or len(read.stdout.split()) != 2:
        return None
    tip, tip_tree = read.stdout.split()
    index = mirror / f"salvage-index-{os.getpid()}-{path.name}"
    env = {"GIT_DIR": str(mirror), "GIT_WORK_TREE": str(path), "GIT_INDEX_FILE": str(index)}
    try:
        git("read-tree", tip, cwd=path, env=env)
        git("add", "-A", "--", ".", ":(exclude).git", *(f":(exclude,literal){p}" for p in leave_out), cwd=path,
            env=env)
        tree = git("write-tree", cwd=path, env=env)
    finally:
        index.unlink(missing_ok=True)
    if tree == tip_tree:
        return None
    sha = git("commit-tree", tree, "-p", tip, "-m", f"salvage: uncommitted work ({ref})", cwd=mirror)
    git("update-ref", ref, sha, cwd=mirror)
    return sha


AGENT_IDENTITY = ("AgilePlus agent", "agent@agileplus.localhost")


# Where a branch whose commits broke governance is kept on the origin: outside refs/heads, so no
# branch a person would merge carries them (docs/operations.md "What the farm leaves on the origin").
QUARANTINE_PREFIX = "refs/agileplus/quarantine/"


def push(worktree_or_mirror: Path, refspecs: list[str]) -> None:
    git("push", "--quiet", "origin", *refspecs, cwd=worktree_or_mirror)


def remove_worktree(mirror: Path, path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    shutil.rmtree(path, ignore_errors=True)
    _prune_linked_worktrees(mirror)


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    return git_run(["merge-base", "--is-ancestor", ancestor, descendant], cwd=repo).returncode == 0


def checked_out_push_fix(origin: str | Path, main: str) -> str | None:
    """The exact command that lets merges push ``main`` to a local non-bare origin that has
    ``main`` checked out (git refuses such a push by default); None when pushes are accepted
    (a bare repository, another branch checked out, a remote URL, or already configured)."""
    path = Path(origin)
    if not path.is_dir() or git("rev-parse", "--is-bare-repository", cwd=path, check=False) != "false":
        return None
    # A folder inside another repository (an example in a checkout) is not what merges push to.
    if git("rev-parse", "--show-toplevel", cwd=path, check=False) != str(path.resolve()):
        return None
    if git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=path, check=False) != main:
        return None
    deny = git("config", "--get", "receive.denyCurrentBranch", cwd=path, check=False)
    if deny in ("updateInstead", "ignore", "warn", "false"):
        return None
    return f"git -C {path} config receive.denyCurrentBranch updateInstead"
