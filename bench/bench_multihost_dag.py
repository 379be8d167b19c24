"""A 50-WP DAG shipped by workers on three network hosts (tests/support/multihost.py, needs
root): services on their own host, the origin over HTTP with a password, the relay publishing to
JetStream. Baseline: the same DAG with every process on one host, in the same run.

Checked on the way (the run fails otherwise): 0 double runs, every event at a JetStream consumer
once, the audit chain verifies, main holds every WP's branch.
Usage: .venv/bin/python bench/bench_multihost_dag.py [--quick]   (--quick: 20 WPs)
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick  # noqa: E402
from _farm import bed_setup  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LAYERS, WIDTH = (4, 5) if is_quick() else (5, 10)


def ship(root: Path, dag: dict[str, list[str]], **placement) -> tuple[float, Counter]:
    """Seconds from `implement --all` to shipped, and the hosts' share of the jobs; checks the invariants."""
    from agileplus.audit.chain import verify_chain
    from agileplus.dispatch.models import DispatchJob
    from agileplus.features.models import Feature
    from tests.support.multihost import (
        assert_every_event_reached_the_consumer_once,
        observing,
        running_farm,
        unmerged_wps,
    )

    with running_farm(root, workers=3, wps=dag, behaviour="commit:1", **placement) as farm:
        start = time.perf_counter()
        done = farm.cli("implement", "003", "--all", "--wait", "--actor", "human:bench", timeout=900)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"{done.stdout}{done.stderr}\n{farm.logs()}")
        with observing(farm.services):
            feature = Feature.objects.get()
            jobs = list(DispatchJob.objects.values_list("wp__code", "state", "worker"))
            runs = Counter(code for code, state, _ in jobs if state == "succeeded")
            problems = [f"{code} ran {n} times" for code, n in runs.items() if n != 1]
            problems += [f"{code} never ran" for code in dag if code not in runs]
            if feature.state != "shipped" or not verify_chain(feature).ok:
                problems.append(f"feature {feature.state}, chain ok={verify_chain(feature).ok}")
            if unmerged_wps(farm.repo, dag):
                problems.append(f"not in main: {unmerged_wps(farm.repo, dag)}")
            assert_every_event_reached_the_consumer_once(farm)
        if problems:
            raise SystemExit("; ".join(problems))
        return seconds, Counter(worker for *_, worker in jobs)


def main() -> None:
    scratch = bed_setup("multihost_dag")
    if scratch is None:
        return
    from tests.support.multihost import layered_dag

    dag = layered_dag(LAYERS, WIDTH)
    hosts, share = ship(scratch / "bed", dag)
    loopback, _ = ship(scratch / "loopback", dag, one_host=True)
    n = len(dag)
    print(f"{n}-WP / {LAYERS}-layer DAG: three worker hosts {hosts:.1f} s ({dict(share)}), one host {loopback:.1f} s; "
          "0 double runs, every event once at the consumer, chain verifies, main holds every WP")
    emit("multihost_dag", [Figure(f"{n}-WP / {LAYERS}-layer DAG to shipped, 3 worker hosts, origin over HTTP",
                                  round(hosts, 1), "s", "same DAG, every process on one host", round(loopback, 1), "s",
                                  note=f"jobs per host {sorted(share.values())}; 0 double runs; events once at "
                                       "JetStream; chain verifies; main = merge of every WP")])


if __name__ == "__main__":
    main()
