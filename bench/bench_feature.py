"""A whole feature, unattended: `agileplus implement 003 --all --wait` on a 3-layer DAG of 7 WPs
(WP01-03 → WP04(01,02), WP05(02,03) → WP06(04), WP07(04,05)) with 3 real workers, an agent
that works 1 s and commits, review and merge after each WP; embedded broker + SQLite.

1. Whole-feature wall time against the critical-path lower bound (the longest dependency
   chain's summed agent run times, measured from the same run's jobs).
2. Time from a WP reaching done to its dependents' agents starting, p50/p95.
3. The rounds' spread: none may take over 2x the median (a stall). Each round prints a per-WP
   timeline: every step (audit entries, the job's queue/claim/start/finish) at its time from the
   round's start, the worker, the wait before each step, and the longest wait; and what the
   workers' logs say about the broker (deaths, quarantined files, retried errors).
Usage: .venv/bin/python bench/bench_feature.py [--quick] [--rounds N] (default 30; --quick: 1)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick, percentile  # noqa: E402
from _farm import implement_all, setup  # noqa: E402

QUICK = is_quick()
ROUNDS = 1 if QUICK else 30
BROKER_LOG_WORDS = {"worker died": "Unrecoverable error", "quarantined": "quarantined", "retried": "retrying in"}
DAG = {"WP01": [], "WP02": [], "WP03": [], "WP04": ["WP01", "WP02"], "WP05": ["WP02", "WP03"],
       "WP06": ["WP04"], "WP07": ["WP04", "WP05"]}


def critical_path(durations: dict[str, float]) -> float:
    finish: dict[str, float] = {}
    for wp in sorted(DAG):  # codes are in topological order here
        finish[wp] = durations[wp] + max((finish[d] for d in DAG[wp]), default=0.0)
    return max(finish.values())


def wp_steps(feature, code: str, deps_done: dict[str, object]) -> list[tuple[object, str]]:
    """(time, step) for one WP: when its dependencies were done, its audit entries, its jobs."""
    from agileplus.audit.models import AuditEntry
    from agileplus.dispatch.models import DispatchJob

    steps = []
    if DAG[code]:
        steps.append((max(deps_done[d] for d in DAG[code]), f"deps {'+'.join(DAG[code])} done"))
    steps += [(e.timestamp, e.transition.removeprefix(f"{code}:"))
              for e in AuditEntry.objects.filter(feature=feature, wp__code=code)]
    for job in DispatchJob.objects.filter(feature=feature, wp__code=code):
        worker = job.worker.removeprefix("worker@") or "?"
        steps += [(at, what) for at, what in ((job.queued_at, "job queued"),
                                              (job.claimed_at, f"claimed by {worker} (attempt {job.attempt})"),
                                              (job.started_at, "agent started"),
                                              (job.finished_at, f"agent {job.state}")) if at]
    return sorted(steps, key=lambda step: step[0])


def print_timeline(feature, start) -> None:
    """Per WP: each step at +seconds from the round's start, (the wait before it), the longest wait."""
    from agileplus.audit.models import AuditEntry

    deps_done = {e.wp.code: e.timestamp for e in AuditEntry.objects.filter(
        feature=feature, transition__endswith="->done").select_related("wp")}
    for code in sorted(DAG):
        steps = wp_steps(feature, code, deps_done)
        waits = [((at - prev).total_seconds(), what, before)
                 for (prev, before), (at, what) in zip(steps, steps[1:], strict=False)]
        line = " → ".join(f"{what} +{(at - start).total_seconds():.2f}s" for at, what in steps)
        wait, what, before = max(waits, default=(0.0, "", ""))
        print(f"  {code}: {line}\n        longest wait {wait:.2f}s: from '{before}' to '{what}'")


def broker_log_counts(root: Path) -> dict[str, int]:
    """What the workers' logs say about the broker (deaths, quarantined files, retried errors)."""
    text = "".join(log.read_text(errors="replace") for log in root.glob("w*/w*.log"))
    return {label: text.count(word) for label, word in BROKER_LOG_WORDS.items()}


def one_round(folder: Path, index: int) -> tuple[float, float, list[float]]:
    from agileplus.audit.models import AuditEntry
    from agileplus.dispatch.models import DispatchJob
    from tests.support.farm import import_target, job_env, make_target_repo, running_workers

    root = folder / f"round-{index}"
    root.mkdir()
    repo = make_target_repo(root, wps=DAG, behaviour="sleep:1,commit:1", slug=f"{index + 3:03d}-dag")
    feature = import_target(repo)
    env = job_env(root / "cli", None, AGILEPLUS_BROKER_DIR=str(root / "broker"))  # the workers' broker
    with running_workers(root, 3, broker_url=None):
        done, wall = implement_all(feature.slug, env, timeout=600)
    if done.returncode != 0:
        blocked = AuditEntry.objects.filter(feature=feature).order_by("seq")
        raise SystemExit(done.stdout[-1000:] + done.stderr[-1000:] + "\n".join(
            f"{e.transition}: {e.metadata}" for e in blocked))
    jobs = {j.wp.code: j for j in DispatchJob.objects.filter(feature=feature, state="succeeded")
            .select_related("wp")}
    durations = {code: (j.finished_at - j.started_at).total_seconds() for code, j in jobs.items()}
    done_at = {e.wp.code: e.timestamp for e in AuditEntry.objects.filter(feature=feature,
                                                                        transition__endswith="->done")
               .select_related("wp")}
    gaps = [(jobs[wp].started_at - max(done_at[d] for d in deps)).total_seconds()
            for wp, deps in DAG.items() if deps]
    print(f"round {index + 1} timeline (broker in the workers' logs: {broker_log_counts(root)}):")
    print_timeline(feature, min(j.queued_at for j in DispatchJob.objects.filter(feature=feature)))
    return wall, critical_path(durations), gaps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds to run (the README's figure: 30)")
    rounds = parser.parse_args().rounds
    folder = setup("feature")
    walls, bounds, gaps = [], [], []
    for i in range(rounds):
        wall, bound, round_gaps = one_round(folder, i)
        walls.append(wall)
        bounds.append(bound)
        gaps += round_gaps
        print(f"round {i + 1}: feature shipped in {wall:.1f}s; critical-path bound {bound:.1f}s; "
              f"done → dependents started: {', '.join(f'{g * 1000:.0f}' for g in round_gaps)} ms")
    wall, bound = percentile(walls, 50), percentile(bounds, 50)
    g50, g95 = percentile(gaps, 50) * 1000, percentile(gaps, 95) * 1000
    stalls = [f"round {i + 1}: {w:.1f}s" for i, w in enumerate(walls) if w > 2 * wall]
    print(f"rounds: {len(walls)}; wall time min {min(walls):.1f}s, p50 {wall:.1f}s, p90 "
          f"{percentile(walls, 90):.1f}s, max {max(walls):.1f}s; above 2x the median: {stalls or 'none'}")
    emit("feature", [
        Figure("7-WP / 3-layer feature to shipped, 3 workers (median)", round(wall, 2), "s",
               "critical-path bound: longest chain of agent run times", round(bound, 2), "s",
               note=f"{len(walls)} round(s); includes review + merge of every WP"),
        Figure("slowest round / median round", round(max(walls) / wall, 2), "x",
               note=f"{len(walls)} round(s); aim: ≤ 2 (no stall)"),
        Figure("WP done → dependents' agents started (p50)", round(g50, 1), "ms",
               note="merge, unblock, queue, claim, mirror fetch, worktree, prompt"),
        Figure("WP done → dependents' agents started (p95)", round(g95, 1), "ms"),
    ])


if __name__ == "__main__":
    main()
