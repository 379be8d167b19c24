"""A real target repository for dispatch tests, and real worker processes to run its jobs.

``make_target_repo`` writes a git repository like a user's (``.kittify/config.yaml`` and
``kitty-specs/<feature>/``) whose agent is ``tests/support/agents/scripted_agent.py`` run by the
``command`` harness; ``import_target`` imports it. ``running_workers`` starts `agileplus worker`
processes, each with its own data folder and hostname, on the test's database and broker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import yaml

from agileplus.features.importer import import_path
from agileplus.features.models import Feature
from tests.support.server import ROOT, subprocess_env

AGENT = Path(__file__).resolve().parent / "agents" / "scripted_agent.py"
SLUG = "003-auth-system"


@dataclass
class TargetRepo:
    path: Path

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    def head(self, ref: str = "main") -> str:
        return self.git("rev-parse", ref)

    def subjects(self, ref: str = "main") -> list[str]:
        return self.git("log", "--format=%s", ref).splitlines()

    def has_branch(self, branch: str) -> bool:
        return bool(self.git("branch", "--list", branch))

    def commit_on_branch(self, branch: str, path: str, message: str) -> str:
        """Earlier work on ``branch`` (made from main, one commit adding ``path``) as if pushed by an
        agent; main stays checked out. Returns the branch's head."""
        self.git("checkout", "-q", "-b", branch, "main")
        (self.path / path).parent.mkdir(parents=True, exist_ok=True)
        (self.path / path).write_text(f"{message}\n")
        self.git("add", "--", path)
        self.git("commit", "-qm", message)
        self.git("checkout", "-q", "main")
        return self.head(branch)

    def branches(self, prefix: str) -> dict[str, str]:
        """The branches under ``prefix`` (e.g. ``salvage/``) and their commits."""
        refs = self.git("for-each-ref", "--format=%(refname:short) %(objectname)", f"refs/heads/{prefix}")
        return dict(line.split() for line in refs.splitlines())


def make_target_repo(
    root: Path,
    *,
    wps: dict[str, list[str]] | None = None,
    behaviour: str = "commit:2",
    environment: dict[str, str] | None = None,
    agent: dict | None = None,
    constraints: dict | None = None,
    review: dict | None = None,
    merge: dict | None = None,
    files: dict[str, str] | None = None,
    owned: dict[str, list[str]] | None = None,
    slug: str = SLUG,
) -> TargetRepo:
    """A git repository with one feature; ``wps`` maps WP code → dependencies (default WP01←WP02←WP03)."""
    wps = {"WP01": [], "WP02": ["WP01"], "WP03": ["WP02"]} if wps is None else wps
    path = root / "origin"
    tasks = path / "kitty-specs" / slug / "tasks"
    tasks.mkdir(parents=True)
    (path / "kitty-specs" / slug / "spec.md").write_text(f"# Feature {slug}\n\nFR-001: users can log in.\n")
    (path / "kitty-specs" / slug / "plan.md").write_text("# Plan\n\nSmall steps.\n")
    for code, deps in wps.items():
        front = {"work_package_id": code, "title": f"Work package {code}", "dependencies": deps,
                 "deliverables": [f"{code.lower()}/file_1.txt"], "estimate": "1 day",
                 "owned_files": (owned or {}).get(code, [f"{code.lower()}/"]), "lane": "planned"}
        (tasks / f"{code}.md").write_text(f"---\n{yaml.safe_dump(front)}---\n# {code}\nDo {code}.\n")
    config = {
        "project": f"target-{root.name}"[:60],
        "agent": {"harness": "command", "command": f"{sys.executable} {AGENT}", "timeout_seconds": 120,
                  "retries": 1, "environment": {"AGENT_BEHAVIOUR": behaviour, **(environment or {})},
                  **(agent or {})},
        "constraints": {"max_file_size": 100_000, "forbidden_paths": [".kittify/", "secrets/"],
                        **(constraints or {})},
        "commit": {"convention": "feat({wp}): <description>"},
        "review": review or {"checks": [{"name": "governance"}, {"name": "commit_convention"}]},
        "merge": merge or {"strategy": "merge"},
    }
    (path / ".kittify").mkdir()
    (path / ".kittify" / "config.yaml").write_text(yaml.safe_dump(config))
    for name, content in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    (path / "README.md").write_text("target\n")
    repo = TargetRepo(path)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "receive.denyCurrentBranch", "updateInstead")
    # Its own identity: tests commit here with an empty HOME (no ~/.gitconfig), as CI may.
    repo.git("config", "user.name", "Target Owner")
    repo.git("config", "user.email", "owner@localhost")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "initial")
    return repo


# The review check that runs the target repository's tests with this interpreter's pytest, as the
# target's own environment would: without the plugins installed for AgilePlus's tests (Django,
# Hypothesis, Schemathesis… each pytest start loaded them all: 6 s instead of 1 s on a busy machine).
PYTEST_ALONE = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
PYTEST_CHECK = {"name": "tests", "parser": "pytest", "timeout": 120, "env": PYTEST_ALONE,
                "command": f"{sys.executable} -m pytest -q -p no:cacheprovider tests"}
# A small real Python project for review checks that run its tests: calc.add and its test.
CALC_PROJECT = {
    "calc/__init__.py": "",
    "calc/core.py": "def add(a: int, b: int) -> int:\n    return a + b\n",
    "tests/__init__.py": "",
    "tests/test_core.py": "from calc.core import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


def outbox_file(tmp_path: Path, name: str) -> Path:
    """A path a sandboxed agent may write outside its repository (the folder named in
    AGILEPLUS_SANDBOX_WRITABLE, see tests/conftest.py), unique to this test and this pytest run."""
    folder = Path(os.environ["AGILEPLUS_SANDBOX_WRITABLE"].split(os.pathsep)[0]) / tmp_path.parent.name / tmp_path.name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    return target


def intervals(record_file: Path) -> dict[str, tuple[float, float]]:
    """When each WP's agent ran, by WP code: (start, end) from the lines ``WP start|end TIME``
    that the target repo's ``record:FILE`` behaviour writes."""
    seen: dict[str, dict[str, float]] = defaultdict(dict)
    for line in record_file.read_text().splitlines():
        wp, what, at = line.split()
        seen[wp][what] = float(at)
    return {wp: (t["start"], t["end"]) for wp, t in seen.items()}


def outbox_dir(tmp_path: Path, name: str) -> Path:
    """A fresh folder a sandboxed agent can read (and write) outside its repository, e.g. the files
    of an ``apply:`` behaviour: in the outbox (see ``outbox_file``)."""
    folder = outbox_file(tmp_path, name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def import_target(repo: TargetRepo) -> Feature:
    return import_path(repo.path, actor="human:alice")[0]


def job_env(data_dir: Path, broker_url: str | None = None, **extra: str) -> dict[str, str]:
    env = subprocess_env(AGILEPLUS_DATA_DIR=str(data_dir), AGILEPLUS_JOB_LEASE_SECONDS=extra.pop("lease", "3"),
                         AGILEPLUS_REAP_EVERY="1", AGILEPLUS_KILL_GRACE_SECONDS=extra.pop("grace", "2"), **extra)
    if broker_url:
        env["CELERY_BROKER_URL"] = broker_url
    return env


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen
    log: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.killpg(self.proc.pid, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_worker(name: str, data_dir: Path, *, broker_url: str | None, harnesses: str = "command",
                 concurrency: int = 1, broker_dir: Path | None = None, loglevel: str = "warning",
                 **extra: str) -> WorkerProcess:
    """``loglevel="info"`` logs each task's result (``Task farm.run_job[…] succeeded in …: 'fenced'``):
    the event a test waits for when it needs a task to have ended."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = job_env(data_dir, broker_url, **extra)
    if broker_dir:
        env["AGILEPLUS_BROKER_DIR"] = str(broker_dir)
    log = data_dir / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agileplus", "worker", "--hostname", name, "--concurrency", str(concurrency),
         "--harnesses", harnesses, "--loglevel", loglevel],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    return WorkerProcess(name, proc, log)


def start_beat(data_dir: Path, *, broker_url: str | None, broker_dir: Path | None = None) -> WorkerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = job_env(data_dir, broker_url)
    if broker_dir:
        env["AGILEPLUS_BROKER_DIR"] = str(broker_dir)
    log = data_dir / "beat.log"
    proc = subprocess.Popen([sys.executable, "-m", "agileplus", "beat"], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    return WorkerProcess("beat", proc, log)


def stop(processes: list[WorkerProcess]) -> None:
    for p in processes:
        if p.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(p.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in processes:
        try:
            p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(p.proc.pid, signal.SIGKILL)
            p.proc.wait()


@contextmanager
def running_workers(root: Path, count: int, *, broker_url: str | None, with_beat: bool = True,
                    loglevel: str = "warning", **extra: str) -> Iterator[list[WorkerProcess]]:
    """``count`` workers (w1…wN, own data folders) and beat, stopped (SIGTERM, then SIGKILL) at exit."""
    broker_dir = None if broker_url else root / "broker"
    procs = [start_worker(f"w{i}", root / f"w{i}", broker_url=broker_url, broker_dir=broker_dir, loglevel=loglevel,
                          **extra)
             for i in range(1, count + 1)]
    if with_beat:
        procs.append(start_beat(root / "beat", broker_url=broker_url, broker_dir=broker_dir))
    try:
        wait_ready([p for p in procs if p.name != "beat"])
        yield procs
    except BaseException:
        for p in procs:
            sys.stderr.write(f"--- {p.name} log ---\n{p.output()[-4000:]}\n")
        raise
    finally:
        stop(procs)


def running_with(text: str) -> list[int]:
    """Host pids of processes whose command line or environment contains ``text``. A sandboxed
    agent's pid is its PID namespace's, not the host's: tests find its processes this way."""
    needle = text.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with suppress(OSError):
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
    return found


def process_alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead: it runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_ready(workers: list[WorkerProcess], timeout: float = 60) -> None:
    """Until every worker has announced itself (its consumer is listening)."""
    from agileplus.dispatch.models import Worker

    names = {f"worker@{w.name}" for w in workers}
    wait_until(lambda: Worker.objects.filter(hostname__in=names, stopped_at__isnull=True).count() == len(names)
               or any(w.proc.poll() is not None for w in workers), timeout=timeout, what=f"workers {sorted(names)}")
    dead = [w.name for w in workers if w.proc.poll() is not None]
    if dead:
        raise RuntimeError(f"workers {dead} exited at start: " + " | ".join(w.output()[-1500:] for w in workers))


def task_results(workers: list[WorkerProcess], result: str) -> int:
    """How many tasks the workers (started with ``loglevel="info"``) ended returning ``result``."""
    return sum(1 for w in workers for line in w.output().splitlines()
               if " succeeded in " in line and line.rstrip().endswith(f": {result!r}"))


def wait_until(predicate, *, timeout: float, every: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def as_json(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)
