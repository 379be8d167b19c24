"""Dispatch across network hosts (tests/support/multihost.py, needs root).

One worker ships N independent no-op WPs (one commit each), one at a time, in three farms built
in the same run:

- loopback: every process on one host (services, origin, worker talk over that host's own stack);
- bed: services, origin and worker on separate hosts (a bridge between network namespaces);
- bed + 100 ms: the same, the worker's database and broker connections 50 ms each way slower
  (tests/support/lag.py: this kernel has no netem).

Figures, from the jobs' own database timestamps: enqueue → agent start, and per-WP orchestration
(enqueue → job finished: claim, mirror fetch, worktree, agent, commit report, push, governance).
The extra time under latency divided by the added round-trip time is the number of round trips on
a WP's critical path: what a far-away worker pays per WP.
Usage: .venv/bin/python bench/bench_multihost.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick, percentile  # noqa: E402
from _farm import bed_setup  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUICK = is_quick()
WPS = 3 if QUICK else 5
ADDED_RTT = 0.1


def run_farm(root: Path, **placement) -> tuple[list[float], list[float]]:
    """(enqueue → agent start, enqueue → finished) in seconds for WP02…WPn (WP01 clones the mirror)."""
    from agileplus.dispatch.models import DispatchJob
    from tests.support.multihost import observing, running_farm

    wps = {f"WP{i:02d}": [] for i in range(1, WPS + 2)}
    with running_farm(root, workers=1, relay=False, wps=wps, behaviour="commit:1", **placement) as farm:
        for code in sorted(wps):
            done = farm.cli("implement", "003", "--wp", code, "--wait", "--actor", "human:bench")
            if done.returncode:
                raise SystemExit(f"{code}: {done.stdout}{done.stderr}\n{farm.logs()}")
        with observing(farm.services):
            jobs = list(DispatchJob.objects.exclude(wp__code="WP01").values_list("queued_at", "started_at",
                                                                                   "finished_at"))
    return ([(s - q).total_seconds() for q, s, _ in jobs], [(f - q).total_seconds() for q, _, f in jobs])


def main() -> None:
    scratch = bed_setup("multihost")
    if scratch is None:
        return
    runs = {"loopback": run_farm(scratch / "loopback", one_host=True),
            "bed": run_farm(scratch / "bed"),
            "bed + 100 ms": run_farm(scratch / "slow", slow={"w1": (ADDED_RTT / 2, 0.0)})}
    p50 = {name: (percentile(start, 50) * 1000, percentile(total, 50) * 1000) for name, (start, total) in runs.items()}
    for name, (start, total) in p50.items():
        print(f"{name}: enqueue → agent start p50 {start:.0f} ms, per-WP orchestration p50 {total:.0f} ms")
    trips_start = (p50["bed + 100 ms"][0] - p50["bed"][0]) / (ADDED_RTT * 1000)
    trips_total = (p50["bed + 100 ms"][1] - p50["bed"][1]) / (ADDED_RTT * 1000)
    print(f"round trips to the database and broker on a WP's critical path: ≈{trips_start:.0f} before the agent "
          f"starts, ≈{trips_total:.0f} from enqueue to finish")
    note = f"{WPS} WPs one at a time, 1 worker; PostgreSQL + Redis on their own host; origin over HTTP"
    figures = []
    for name in ("bed", "bed + 100 ms"):
        figures += [
            Figure(f"enqueue → agent start, {name} (p50)", round(p50[name][0], 1), "ms",
                   "same, loopback (all on one host)", round(p50["loopback"][0], 1), "ms", note=note),
            Figure(f"per-WP orchestration, {name} (p50)", round(p50[name][1], 1), "ms",
                   "same, loopback (all on one host)", round(p50["loopback"][1], 1), "ms",
                   note="enqueue → job finished (no review/merge)"),
        ]
    figures.append(Figure("round trips per WP on the critical path, enqueue → finished", round(trips_total, 1),
                          "round trips", note=f"(+100 ms p50 − bed p50) / 100 ms; ≈{trips_start:.0f} before the "
                                              "agent starts"))
    emit("multihost", figures)


if __name__ == "__main__":
    main()
