"""The git layer a worker runs agents in: a local mirror of the project origin per
worker (no shared disk between machines), one worktree and branch per WP, commit
detection, pushes back to the origin, and salvage before any cleanup.

Plain ``git`` subprocesses: they are the fastest path and behave exactly as users
expect from their own repositories.

An origin may be a URL with credentials (``https://user:token@host/repo.git``). The credentials
never reach a git command line, a clone's ``.git/config`` (which the agent's worktree shares)
or a message: git gets the URL without them and an ``Authorization`` header scoped to that URL
through ``GIT_CONFIG_*`` environment variables of its own process only; every message shows the
URL redacted (``https://***@host/repo.git``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "AgilePlus",
    "GIT_AUTHOR_EMAIL": "agileplus@localhost",
    "GIT_COMMITTER_NAME": "AgilePlus",
    "GIT_COMMITTER_EMAIL": "agileplus@localhost",
    # A network origin that stops answering mid-transfer fails the command after a minute
    # instead of hanging the job until the kernel gives the connection up.
    "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
    "GIT_HTTP_LOW_SPEED_TIME": "60",
}


class GitError(Exception):
    pass


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
# Clean origin URL -> "Authorization: Basic …" header, for this process's git commands only.
_AUTH_HEADERS: dict[str, str] = {}


def redact_url(text: str) -> str:
    """``text`` with the user/password part of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def remote_url(origin: str) -> str:
    """``origin`` without its credentials, which are kept for this process's git commands.

    Only http(s) credentials are taken out: an ssh origin (``git@host:repo`` or
    ``ssh://git@host/repo``) names a user, not a secret, and authenticates with the host's key.
    """
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return origin
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, ""))
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    _AUTH_HEADERS[clean] = f"Authorization: Basic {token}"
    return clean


def _auth_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for i, (url, header) in enumerate(_AUTH_HEADERS.items()):
        # http.<url>.extraHeader: sent only to that URL (and below it), never to another host.
        env[f"GIT_CONFIG_KEY_{i}"] = f"http.{url}.extraHeader"
        env[f"GIT_CONFIG_VALUE_{i}"] = header
    if env:
        env["GIT_CONFIG_COUNT"] = str(len(_AUTH_HEADERS))
    return env


def git_env() -> dict[str, str]:
    """The environment of a git process this module does not run itself (e.g. ``merge-tree``,
    whose exit code is the answer): this process's, with AgilePlus's identity and no prompt."""
    return {**os.environ, **GIT_ENV}


def git(*args: str, cwd: Path | str | None = None, check: bool = True, input: str | None = None) -> str:
    args = tuple(remote_url(a) if _USERINFO.match(a) else a for a in args)
    env = {**os.environ, **GIT_ENV, **_auth_env()}
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, input=input)
    if check and proc.returncode != 0:
        raise GitError(redact_url(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}"))
    return proc.stdout.strip()


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
                    reset: bool = False) -> tuple[Path, str]:
    """``worktrees_root/name`` on ``branch`` from ``base_ref``; returns (path, base sha).

    An existing branch (a retry, partial work pushed before) is continued, not reset, unless
    ``reset`` (a replay: the same base as the original run; the old head stays reachable as
    ``refs/agileplus/replaced/<branch>``). A leftover worktree with uncommitted work is
    salvaged to ``refs/agileplus/salvage/<name>-<time>`` before it is removed.
    """
    with mirror_lock(mirror):
        return _create_worktree(mirror, worktrees_root / name, branch, base_ref, reset=reset)


def _create_worktree(mirror: Path, path: Path, branch: str, base_ref: str, *, reset: bool = False) -> tuple[Path, str]:
    worktrees_root = path.parent
    base_sha = git("rev-parse", f"{base_ref}^{{commit}}", cwd=mirror)
    if path.exists():
        salvage(path, f"refs/agileplus/salvage/{path.name}-{int(time.time())}")
        remove_worktree(mirror, path)
    worktrees_root.mkdir(parents=True, exist_ok=True)
    git("worktree", "prune", cwd=mirror)
    if reset:
        for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
            old = git("rev-parse", "--verify", "--quiet", ref, cwd=mirror, check=False)
            if old:
                git("update-ref", f"refs/agileplus/replaced/{branch}", old, cwd=mirror)
        git("worktree", "add", "--quiet", "-B", branch, str(path), base_sha, cwd=mirror)
        return path, base_sha
    local = bool(git("branch", "--list", branch, cwd=mirror))
    remote = bool(git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}", cwd=mirror, check=False))
    if remote and not local:
        git("branch", branch, f"refs/remotes/origin/{branch}", cwd=mirror)
        local = True
    if local:
        git("worktree", "add", "--quiet", str(path), branch, cwd=mirror)
        base_sha = git("merge-base", branch, base_sha, cwd=mirror)
    else:
        git("worktree", "add", "--quiet", "-b", branch, str(path), base_sha, cwd=mirror)
    return path, base_sha


def commits_since(worktree: Path, base: str) -> list[Commit]:
    """Commits on HEAD after ``base``, oldest first, with the files each changed."""
    out = git("log", "--reverse", "--format=%x1e%H%x1f%B%x1f", "--name-only", f"{base}..HEAD", cwd=worktree,
              check=False)
    commits = []
    for record in out.split("\x1e"):
        if not record.strip():
            continue
        sha, message, files = (record.split("\x1f") + ["", ""])[:3]
        commits.append(Commit(sha.strip(), message.strip(), [f for f in files.split("\n") if f.strip()]))
    return commits


def head(worktree: Path) -> str:
    return git("rev-parse", "HEAD", cwd=worktree)


def files_changed(worktree: Path, base: str) -> list[str]:
    out = git("diff", "--name-only", f"{base}..HEAD", cwd=worktree, check=False)
    return [f for f in out.splitlines() if f]


def has_uncommitted(worktree: Path) -> bool:
    return bool(git("status", "--porcelain", cwd=worktree, check=False))


def salvage(worktree: Path, ref: str) -> str | None:
    """Commit uncommitted work (tracked and untracked) to ``ref`` without touching the branch."""
    if not worktree.exists() or not (worktree / ".git").exists() or not has_uncommitted(worktree):
        return None
    index = worktree.parent / f".salvage-index-{worktree.name}"
    env = {**os.environ, **GIT_ENV, "GIT_INDEX_FILE": str(index)}
    try:
        subprocess.run(["git", "read-tree", "HEAD"], cwd=worktree, env=env, check=True, capture_output=True)
        subprocess.run(["git", "add", "-A"], cwd=worktree, env=env, check=True, capture_output=True)
        tree = subprocess.run(["git", "write-tree"], cwd=worktree, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()
    finally:
        index.unlink(missing_ok=True)
    sha = git("commit-tree", tree, "-p", "HEAD", "-m", f"salvage: uncommitted work ({ref})", cwd=worktree)
    git("update-ref", ref, sha, cwd=worktree)
    return sha


AGENT_IDENTITY = ("AgilePlus agent", "agent@agileplus.localhost")


def pin_commit_identity(mirror: Path) -> None:
    """Write the identity the agent commits as into the mirror's own config (its worktrees read
    it): the worker's global identity if it has one, else AgilePlus's. Some CLIs run their shell
    with the global config switched off (Gemini CLI sets GIT_CONFIG_GLOBAL=/dev/null), where a
    commit would otherwise fail with "Author identity unknown"."""
    for key, default in zip(("user.name", "user.email"), AGENT_IDENTITY, strict=True):
        if not git("config", "--local", "--get", key, cwd=mirror, check=False):
            git("config", "--local", key, git("config", "--get", key, cwd=mirror, check=False) or default, cwd=mirror)


def push(worktree_or_mirror: Path, refspecs: list[str]) -> None:
    git("push", "--quiet", "origin", *refspecs, cwd=worktree_or_mirror)


def remove_worktree(mirror: Path, path: Path) -> None:
    git("worktree", "remove", "--force", str(path), cwd=mirror, check=False)
    shutil.rmtree(path, ignore_errors=True)
    git("worktree", "prune", cwd=mirror, check=False)


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    proc = subprocess.run(["git", "merge-base", "--is-ancestor", ancestor, descendant], cwd=repo,
                          capture_output=True)
    return proc.returncode == 0


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
