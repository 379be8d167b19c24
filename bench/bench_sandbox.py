"""What the agent sandbox adds to a job: set-up + tear-down of the bubblewrap sandbox around a
trivial agent (``sh -c true``) run through AgentProcess, against the same bare spawn, interleaved
in the same run. The sandbox as every job gets it: a user namespace with every capability
dropped, a non-root uid inside, the job's pids and memory cgroups where the worker may make them.
Also with ``agent.network: model`` (the egress proxy listening inside the sandbox).
Usage: .venv/bin/python bench/bench_sandbox.py [--quick]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import Figure, emit, is_quick, percentile  # noqa: E402

from harnesses.egress import EgressProxy  # noqa: E402
from harnesses.process import AgentProcess  # noqa: E402
from harnesses.sandbox import Sandbox, SandboxSpec, runtime_paths, sandbox_mode, sandbox_status  # noqa: E402

QUICK = is_quick()
RUNS = 12 if QUICK else 60
ARGV = ["/bin/sh", "-c", "true"]
ENV = {"PATH": "/usr/bin:/bin"}


def one_run(work: Path, *, network: str | None, scratch: Path, cgroups: bool = True) -> float:
    """Seconds from nothing to a finished, torn-down run (sandbox and proxy included when asked;
    ``cgroups=False``: the sandbox without the job's pids and memory cgroups, to tell their share)."""
    start = time.perf_counter()
    sandbox = proxy = None
    if network is not None:
        spec = SandboxSpec(workdir=work, read_only=runtime_paths(), network=network, hidden=[scratch / "data"])
        spec.read_only_over = [scratch / "mirror-objects"]
        sandbox = Sandbox(spec)
        if network == "model":
            proxy = spec.egress = EgressProxy({("api.anthropic.com", 443)})
        if cgroups:
            sandbox.open()
    proc = AgentProcess(ARGV, cwd=work, env=ENV, timeout_seconds=30, sandbox=sandbox)
    result = proc.run(lambda _stream, _text: None)
    if sandbox is not None:
        sandbox.close()
    if proxy is not None:
        proxy.stop()
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result
    return elapsed


def main() -> None:
    mode = sandbox_mode()
    scratch = Path(tempfile.mkdtemp(prefix="ap-bench-sandbox-"))
    try:
        work = scratch / "data" / "worktree"
        work.mkdir(parents=True)
        (scratch / "mirror-objects").mkdir()
        samples: dict[str, list[float]] = {"bare": [], "none": [], "model": [], "no-cg": []}
        run = {"bare": lambda: one_run(work, network=None, scratch=scratch),
               "none": lambda: one_run(work, network="none", scratch=scratch),
               "model": lambda: one_run(work, network="model", scratch=scratch),
               "no-cg": lambda: one_run(work, network="none", scratch=scratch, cgroups=False)}
        for _ in range(2):  # warm the page cache and bwrap's probe
            for kind in samples:
                run[kind]()
        for _ in range(RUNS):
            for kind in samples:
                samples[kind].append(run[kind]())
        ms = {k: (percentile(v, 50) * 1000, percentile(v, 95) * 1000) for k, v in samples.items()}
        status = sandbox_status()
        identity = (f"capabilities {status['capabilities']}, uid {status['uid']} inside, "
                    f"memory per {status['memory']['scope']}")
        print(f"sandbox mode {mode} ({identity}), {RUNS} interleaved runs of `sh -c true` through AgentProcess, "
              f"load {os.getloadavg()[0]:.2f}")
        for kind, (p50, p95) in ms.items():
            print(f"  {kind:>5}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        for kind in ("none", "model"):
            print(f"  added by the sandbox ({kind}): p50 {ms[kind][0] - ms['bare'][0]:+.1f} ms, "
                  f"p95 {ms[kind][1] - ms['bare'][1]:+.1f} ms")
        print(f"  of which the job's cgroups (none over no-cg): p50 {ms['none'][0] - ms['no-cg'][0]:+.1f} ms, "
              f"p95 {ms['none'][1] - ms['no-cg'][1]:+.1f} ms")
        print(f"  added by network model over none (egress proxy): p50 {ms['model'][0] - ms['none'][0]:+.1f} ms, "
              f"p95 {ms['model'][1] - ms['none'][1]:+.1f} ms")
        emit("sandbox", [
            Figure("sandboxed agent spawn + teardown, network none (p95)", round(ms["none"][1], 1), "ms",
                   "bare spawn (p95)", round(ms["bare"][1], 1), "ms",
                   note=f"added p50 {ms['none'][0] - ms['bare'][0]:.1f} ms; {identity}; aim: ≤ 25 ms p95 added"),
            Figure("sandboxed agent spawn + teardown, network model with egress proxy (p95)", round(ms["model"][1], 1),
                   "ms", "bare spawn (p95)", round(ms["bare"][1], 1), "ms",
                   note=f"added p50 {ms['model'][0] - ms['bare'][0]:.1f} ms; over network none: p50 "
                        f"{ms['model'][0] - ms['none'][0]:.1f} ms (listeners bound inside by the worker)"),
        ])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
