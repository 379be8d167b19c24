"""One job's cgroups: a limit for the job's whole process tree, not per process.

Per job the worker makes, where the kernel offers the controller and this worker may write it:

- a pids cgroup (``pids.max`` = ``agent.limits.processes``): RLIMIT_NPROC counts per user, and
  not at all for a worker that runs as root;
- a memory cgroup (``memory.limit_in_bytes`` on cgroup v1, ``memory.max`` on v2, swap included
  where the kernel accounts it) of ``agent.limits.memory_mb``: every process of the job counts
  together, and so does what it writes to a tmpfs (``/tmp``, ``/dev/shm``: tmpfs pages are
  charged to the cgroup of the process that wrote them). Over the limit the kernel's OOM killer
  ends a process of the job; the runner sees the kill in the cgroup's counters and stops the
  whole job with the reason ``memory_limit``.

Where: cgroup v1 (``/sys/fs/cgroup/<controller>``, hybrid mode included) or v2 (the unified
hierarchy at ``/sys/fs/cgroup``), under an ``agileplus`` folder. A root worker creates that
folder; an operator delegates it to an ordinary worker's user with ``mkdir`` + ``chown`` (see
README "Threat model"). Where neither works the honest fallback is said by ``memory_scope``:
the limit is per process (RLIMIT_DATA), and a job of several processes can hold several times it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "agileplus"


@dataclass(frozen=True)
class Controller:
    name: str  # pids | memory
    version: int  # 1 | 2
    parent: Path  # the agileplus folder (jobs' cgroups go below it)


def _v2_root() -> Path | None:
    return CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").is_file() else None


def controller(name: str) -> Controller | None:
    """Where this worker may make job cgroups for ``name``, or None (no controller, or no right)."""
    v1 = CGROUP_ROOT / name
    if (v1 / "cgroup.procs").is_file():
        found = Controller(name, 1, v1 / PARENT)
    elif (root := _v2_root()) is not None and name in (root / "cgroup.controllers").read_text().split():
        found = Controller(name, 2, root / PARENT)
    else:
        return None
    home = found.parent if found.parent.is_dir() else found.parent.parent
    return found if os.access(home, os.W_OK) else None


def memory_scope() -> dict:
    """What ``agent.limits.memory_mb`` bounds on this worker: the job (a memory cgroup) or, the
    honest fallback, each process (RLIMIT_DATA), with why."""
    found = controller("memory")
    if found is not None:
        return {"scope": "job", "cgroup": f"v{found.version}"}
    why = ("no memory cgroup controller on this machine" if not (CGROUP_ROOT / "memory").is_dir()
           and _v2_root() is None else f"this worker may not create memory cgroups (run it as root, or "
           f"delegate {CGROUP_ROOT}/memory/{PARENT} to its user)")
    return {"scope": "process", "cgroup": "", "why": why + ": the limit is per process (RLIMIT_DATA)"}


@dataclass
class JobCgroups:
    """The cgroups of one job; ``enter`` (in the child, before exec) puts its process in them."""

    job: str
    paths: list[Path] = field(default_factory=list)
    memory: Path | None = None
    memory_version: int = 0
    pids: Path | None = None

    @classmethod
    def create(cls, job: str, *, processes: int, memory_bytes: int) -> JobCgroups:
        made = cls(job)
        pids = controller("pids")
        if pids is not None:
            made.pids = made._make(pids, {"pids.max": str(processes)})
        memory = controller("memory")
        if memory is not None:
            limits = ({"memory.limit_in_bytes": str(memory_bytes), "memory.memsw.limit_in_bytes?": str(memory_bytes)}
                      if memory.version == 1 else
                      {"memory.max": str(memory_bytes), "memory.swap.max?": "0", "memory.oom.group?": "1"})
            made.memory = made._make(memory, limits)
            made.memory_version = memory.version if made.memory else 0
        return made

    def _make(self, found: Controller, files: dict[str, str]) -> Path | None:
        """mkdir the job's cgroup and write its limits (a name ending in ``?`` is optional)."""
        if found.version == 2:
            _enable_v2(found)
        _sweep(found.parent)
        path = found.parent / self.job
        try:
            path.mkdir(parents=True)
            for name, value in files.items():
                optional = name.endswith("?")
                try:
                    (path / name.rstrip("?")).write_text(value)
                except OSError:
                    if not optional:
                        raise
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        self.paths.append(path)
        return path

    def enter(self) -> None:
        """In the child before exec (no allocation-heavy work): join every cgroup of the job."""
        pid = str(os.getpid()).encode()
        for path in self.paths:
            with contextlib.suppress(OSError):
                fd = os.open(path / "cgroup.procs", os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)

    def oom_kills(self) -> int:
        """How many of the job's processes the kernel killed for its memory limit."""
        if self.memory is None:
            return 0
        name = "memory.oom_control" if self.memory_version == 1 else "memory.events"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def memory_peak(self) -> int:
        if self.memory is None:
            return 0
        name = "memory.max_usage_in_bytes" if self.memory_version == 1 else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int((self.memory / name).read_text())
        return 0

    def close(self) -> None:
        """Remove the cgroups; busy ones (the last processes still exiting) by a short-lived thread,
        and one left even so by a later job's sweep."""
        paths, self.paths = self.paths, []
        self.memory = self.pids = None
        busy = [p for p in paths if not remove(p, attempts=1)]
        if busy:
            threading.Thread(target=lambda: [remove(p) for p in busy], name=f"cgroup-{self.job}",
                             daemon=True).start()


def _enable_v2(found: Controller) -> None:
    """v2: the controller enabled for the agileplus folder's children."""
    with contextlib.suppress(OSError):
        found.parent.mkdir(exist_ok=True)
        for folder in (found.parent.parent, found.parent):
            if found.name not in (folder / "cgroup.subtree_control").read_text().split():
                (folder / "cgroup.subtree_control").write_text(f"+{found.name}")


def remove(path: Path, *, attempts: int = 250) -> bool:
    """rmdir a job's cgroup, retrying while its last processes exit. True once it is gone."""
    for attempt in range(attempts):
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if attempt + 1 < attempts:
                time.sleep(0.02)
    return False


def _sweep(parent: Path) -> None:
    """Remove the empty job cgroups a minute old or more (left when a close found them busy)."""
    if not parent.is_dir():
        return
    now = time.time()
    for child in parent.iterdir():
        with contextlib.suppress(OSError):
            if child.is_dir() and now - child.stat().st_mtime > 60 \
                    and not (child / "cgroup.procs").read_text().strip():
                child.rmdir()
