"""A real worker run as root or as an ordinary user, for the attacks of tests/security.

As root: `agileplus implement --inline` in this test's process's user (root, when the tests run
as root). As an ordinary user: the same command under ``setpriv`` as ``agileplus-test`` (made
with ``useradd`` when missing), its files (target repository, data folder) chowned to it, the
test database's folder shared with its group. An interpreter installed under root's home (a
pyenv in /root, mode 0700) is shown to the worker alone, in a mount namespace of its own where
/root is an empty folder holding only that install: the worker sees what a worker whose Python is
installed where users can read it sees. Everything is put back when the test ends."""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from agileplus.dispatch.models import DispatchJob
from tests.security.support import SLUG, WORKER, Attack
from tests.support.farm import ROOT, job_env

TEST_USER = "agileplus-test"
CGROUP_PARENTS = (Path("/sys/fs/cgroup/memory/agileplus"), Path("/sys/fs/cgroup/pids/agileplus"))
# git run by the test (root) on the repositories the worker's user owns
SAFE_DIRECTORY = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}


def require_root() -> None:
    if os.geteuid() != 0:
        print("skipped: running the worker as root and as another user needs root (this run is not root)")
        pytest.skip("running the worker as root and as another user needs root (this run is not root)")


def test_user() -> pwd.struct_passwd:
    """The ordinary user the worker runs as, made when missing."""
    require_root()
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(TEST_USER)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                   check=True, capture_output=True)
    return pwd.getpwnam(TEST_USER)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, gid)


@contextlib.contextmanager
def _group_shared(paths: list[Path], gid: int) -> Iterator[None]:
    """``paths`` group-owned by ``gid`` and group-writable for the test, then as they were."""
    before = [(p, p.stat().st_gid, p.stat().st_mode) for p in paths if p.exists()]
    try:
        for path, _gid, mode in before:
            os.chown(path, -1, gid)
            path.chmod(mode | 0o070)
        yield
    finally:
        for path, old_gid, mode in before:
            with contextlib.suppress(OSError):
                os.chown(path, -1, old_gid)
                path.chmod(mode & 0o7777)


@contextlib.contextmanager
def delegated_cgroups(user: pwd.struct_passwd) -> Iterator[None]:
    """The operator's delegation of the agileplus cgroup folders to the worker's user (README
    "Threat model"): it can then make each job's memory and pids cgroups."""
    made = []
    for parent in CGROUP_PARENTS:
        if parent.parent.is_dir():
            parent.mkdir(exist_ok=True)
            os.chown(parent, user.pw_uid, user.pw_gid)
            made.append(parent)
    try:
        yield
    finally:
        for parent in made:
            with contextlib.suppress(OSError):
                os.chown(parent, 0, 0)


def _python_view() -> str:
    """Shell lines (run as root in a new mount namespace) that show the worker's user this
    interpreter when it is installed under root's 0700 home."""
    base = Path(sys.base_prefix).resolve()
    home = Path("/root")
    if home not in base.parents:
        return ""
    top = home / base.relative_to(home).parts[0]  # e.g. /root/.pyenv
    keep = f"/tmp/.agileplus-test-keep-{os.getpid()}"
    return (f"mount --make-rprivate / && mkdir -p {keep} && mount --bind {top} {keep} && "
            f"mount -t tmpfs -o mode=755 tmpfs {home} && mkdir {top} && mount --move {keep} {top} && "
            f"rmdir {keep} && ")


class WorkerAs:
    """Runs `agileplus implement --inline` for an Attack as ``who`` (root | user)."""

    def __init__(self, who: str, monkeypatch: pytest.MonkeyPatch):
        self.who = who
        self.user = test_user() if who == "user" else None
        self.monkeypatch = monkeypatch
        self.shared: contextlib.ExitStack = contextlib.ExitStack()

    def folder(self, tmp_path: Path) -> Path:
        """Where the attack's files go: pytest's folder for root; for the user one it can reach
        (pytest's are 0700 below /tmp/pytest-of-root), removed by ``close``."""
        if self.user is None:
            return tmp_path
        base = Path(tempfile.mkdtemp(prefix="agileplus-sec-"))
        base.chmod(0o755)
        self.shared.callback(shutil.rmtree, base, True)
        return base

    def home(self, base: Path) -> Path:
        home = base / "worker-home"
        home.mkdir(exist_ok=True)
        return home

    def prepare(self, attack: Attack) -> None:
        """Give the attack's files (repository, data folder) to the worker's user."""
        if self.user is None:
            return
        base = attack.tmp_path
        self.home(base)
        _chown_tree(base, self.user.pw_uid, self.user.pw_gid)
        for name, value in SAFE_DIRECTORY.items():
            self.monkeypatch.setenv(name, value)
        if connection.vendor == "sqlite":
            database = Path(connection.settings_dict["NAME"])
            self.shared.enter_context(_group_shared([database.parent, database,
                                                     *database.parent.glob(database.name + "-*")],
                                                    self.user.pw_gid))

    def cli(self, attack: Attack, *args: str, **env: str) -> subprocess.CompletedProcess:
        """``agileplus ARGS`` with the attack's data folder, as root or as the ordinary user."""
        environment = job_env(attack.data_dir, None, AGILEPLUS_BROKER_DIR=str(attack.tmp_path / "broker"),
                              AGILEPLUS_WORKER_NAME=WORKER, **env)
        environment.pop("AGILEPLUS_SANDBOX", None)
        argv = [sys.executable, "-m", "agileplus", *args]
        if self.user is not None:
            environment.update(HOME=str(self.home(attack.tmp_path)), USER=TEST_USER, **SAFE_DIRECTORY)
            become = (f"exec setpriv --reuid {self.user.pw_uid} --regid {self.user.pw_gid} --clear-groups "
                      f"--inh-caps=-all -- {shlex.join(argv)}")
            argv = [shutil.which("unshare") or "unshare", "-m", "sh", "-c", _python_view() + become]
        done = subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240)
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        return done

    def run(self, attack: Attack, wp: str = "WP01", **env: str) -> DispatchJob:
        """`agileplus implement --inline` of ``wp``: its job."""
        done = self.cli(attack, "implement", SLUG[:3], "--wp", wp, "--inline", **env)
        job = DispatchJob.objects.filter(feature=attack.feature, wp__code=wp).order_by("-queued_at").first()
        assert job is not None, done.stdout[-2000:] + done.stderr[-2000:]
        return job

    def close(self) -> None:
        self.shared.close()
