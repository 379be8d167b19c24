"""The sandbox of one dispatch job (harnesses/sandbox.py does the mechanism): its mounts, limits and
network, the egress proxy, and what the agent was refused. The harness credentials it mounts are
the worker's (``agileplus.core.secrets.harness_credentials``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings
from django.db import transaction

from agileplus.core.secrets import HarnessCredentials, harness_credentials
from agileplus.events.services import record_event
from agileplus.events.subjects import job_event
from harnesses.base import HarnessError
from harnesses.egress import EgressProxy, allowed_destinations, base_url_destination, loopback_ports
from harnesses.gateway import GATEWAY_PORT
from harnesses.registry import adapter_names, get_adapter
from harnesses.sandbox import PROXY_PORT, Limits, Sandbox, SandboxSpec, network_policy, runtime_paths, sandbox_status

# The model API hosts of each provider the gateway serves: closed to the agent when it does.
PROVIDER_HOSTS = {"anthropic": ("api.anthropic.com",), "openai": ("api.openai.com",),
                  "gemini": ("generativelanguage.googleapis.com",)}


def local_harnesses(names: list[str] | None = None) -> dict:
    """What this worker can run, per harness: available (the CLI is there AND the sandbox can be
    made, or AGILEPLUS_SANDBOX=off), version, sandbox mode, network policy default, and the names
    of the harness credentials it holds or misses (never their values)."""
    sandbox = sandbox_status()
    found = {}
    for name in names or adapter_names():
        availability = get_adapter(name).availability()
        credentials = harness_credentials(name)
        refused = sandbox["mode"] == "unavailable"
        found[name] = {"available": availability.available and not refused, "version": availability.version,
                       "reason": sandbox["reason"] if refused else availability.reason,
                       "sandbox": sandbox["mode"], "network": "model", "capabilities": sandbox["capabilities"],
                       "uid": sandbox["uid"], "memory": sandbox["memory"],
                       "credentials": {"present": credentials.present, "missing": credentials.missing}}
    return found


def hidden_paths() -> list[Path]:
    """Folders no read-only mount of a sandbox may contain: the worker's state and its home."""
    return [settings.DATA_DIR, settings.BROKER_DIR, settings.WORKER_DATA_DIR, Path.home()]


def job_sandbox(*, harness_binary: str | None, worktree: Path, mirror: Path, prompt_dir: Path, config: dict,
                credentials: HarnessCredentials, path_env: str | None = None) -> Sandbox:
    """The sandbox of one agent run: the agent's repository writable, the mirror's object store
    read-only (its repository borrows those objects), the prompt folder read-only."""
    spec = SandboxSpec(
        workdir=worktree,
        writable=extra_writable(),
        read_only=[*runtime_paths(harness_binary, path_env), *extra_read_only()],
        files=dict(credentials.files),
        network=network_policy(config),
        limits=Limits.from_config(config.get("limits")),
        hidden=hidden_paths(),
    )
    sandbox = Sandbox(spec)
    # Explicit mounts inside the hidden folders: only these two.
    spec.read_only_over = [(mirror / "objects").resolve(), prompt_dir]
    return sandbox


def extra_writable() -> list[Path]:
    """``AGILEPLUS_SANDBOX_WRITABLE``: folders (':'-separated) every sandbox may write besides its
    repository. For an operator's shared cache, or a test's outbox; never the data folder."""
    paths = [Path(p).resolve() for p in os.environ.get("AGILEPLUS_SANDBOX_WRITABLE", "").split(os.pathsep) if p]
    for path in paths:
        if any(path == h.resolve() or h.resolve() in path.parents or path in h.resolve().parents
               for h in hidden_paths()):
            raise HarnessError(f"AGILEPLUS_SANDBOX_WRITABLE names {path}, which overlaps the worker's data folder "
                               "or home: name a folder of its own")
    return [p for p in paths if p.is_dir()]


def extra_read_only() -> list[Path]:
    """``AGILEPLUS_SANDBOX_READONLY``: more install folders (':'-separated) every sandbox mounts read-only."""
    return [Path(p) for p in os.environ.get("AGILEPLUS_SANDBOX_READONLY", "").split(os.pathsep) if p]


def check_sandbox(tree: Path, *, network: str = "none") -> Sandbox:
    """The sandbox of a review check: the candidate tree writable, its .git read-only (a planted
    hook there would run at the merge's push), network ``none`` unless the check declares one."""
    spec = SandboxSpec(
        workdir=tree,
        read_only=[*runtime_paths(None), *extra_read_only()],
        network=network_policy({"network": network}),
        hidden=hidden_paths(),
    )
    spec.read_only_over = [tree / ".git"]
    return Sandbox(spec)


def start_egress(sandbox: Sandbox, *, harness: str, config: dict, env: dict[str, str], gateway=None):
    """Under ``agent.network: model``: the job's egress proxy, pointed at by the sandbox (it
    listens inside once bwrap has made the namespaces). Returns the proxy (``stop()`` it after the
    run; ``refused`` lists what it turned away) or None. With the job's model ``gateway``
    (``dispatch/gateway.py: GatewayPlan``) the gateway listens inside too, and the providers it
    serves are reached only through it: their API hosts are not open to the agent directly."""
    if not (sandbox.mode != "off" and sandbox.spec.network == "model"):
        return None
    allowed = allowed_destinations(harness, config, env)
    if gateway is not None:
        allowed.discard(("127.0.0.1", GATEWAY_PORT))
        for route in gateway.routes.values():
            allowed -= {(host, 443) for host in PROVIDER_HOSTS.get(route.provider, ())}
            allowed.discard(base_url_destination(route.base_url))
        sandbox.spec.gateway = gateway.gateway
    sandbox.spec.forward_ports = [p for p in loopback_ports(allowed) if p not in (PROXY_PORT, GATEWAY_PORT)]
    sandbox.spec.egress = EgressProxy(allowed)
    return sandbox.spec.egress


def report_refused(run, egress) -> None:
    """Each connection the egress proxy refused since the last call: an event
    (``agileplus.agent.job.<id>.network_refused``), and a log line for the first refusal of each
    destination (a CLI's telemetry retries the same host all run long); the job's result keeps
    the whole list."""
    if egress is None:
        return
    reported = getattr(run, "_refused_reported", 0)
    fresh = egress.refused[reported:]
    run._refused_reported = reported + len(fresh)
    if not fresh:
        return
    told = run.__dict__.setdefault("_refused_told", set())
    for destination in dict.fromkeys(fresh):
        if destination not in told:
            told.add(destination)
            run.say(f"Network: refused a connection to {destination} (agent.network: model allows only "
                    "the harness's API hosts; further refusals to it are only counted in the job's result)")
    with transaction.atomic():
        record_event(job_event(run.job.id, "network_refused"), {"job_id": run.job.id, "destinations": fresh},
                     feature_id=run.job.feature_id)


# What a failed open, read or write says, in the agent's own output (its tools print it).
DENIED = re.compile(r"No such file or directory|Permission denied|Read-only file system|Operation not permitted")
PATH_CHARS = r"[^\s'\"`:;,)]*"


def denied_attempts(line: str, hidden: list[Path]) -> list[str]:
    """The paths a line of the agent's output says it failed to reach: under the folders hidden
    from it (the worker's data, broker and home), or written on a read-only mount. Only what the
    agent printed: an attempt whose error it swallows is not seen (no ptrace, no seccomp notify)."""
    if not DENIED.search(line):
        return []
    found = [m for h in hidden for m in re.findall(re.escape(str(h)) + PATH_CHARS, line)]
    if "Read-only file system" in line:
        found += [m for m in re.findall(r"(?<![\w.])/" + PATH_CHARS, line) if m != "/" and m not in found]
    return found


# A privileged operation the sandbox refused (no capability inside), as the agent's own tools
# report it: mount's "must be superuser", a failed remount, open_by_handle_at, ptrace, mknod…
PRIVILEGED = re.compile(r"\b(u?mount|remount|open_by_handle_at|name_to_handle_at|ptrace|PTRACE_[A-Z]+|mknod|pivot_root|"
                        r"chroot|setns|SOCK_RAW|raw socket)\b", re.IGNORECASE)
REFUSED = re.compile(r"Operation not permitted|Permission denied|must be superuser|\bEPERM\b", re.IGNORECASE)


def escape_attempt(line: str) -> bool:
    """Whether a line of the agent's output says the sandbox refused it a privileged operation.
    Only what the agent printed: an attempt whose error it swallows is refused just the same, unseen."""
    return bool(REFUSED.search(line) and PRIVILEGED.search(line))
