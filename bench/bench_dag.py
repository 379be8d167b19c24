"""DAG algorithms on 10,000 WPs / 50,000 edges: cycle check, ready set, unblock computation.

Baseline: networkx (same graph, same questions) when installed, else a plain topological sort.
Usage: .venv/bin/python bench/bench_dag.py [--quick]
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agileplus.features import dag  # noqa: E402


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000, value


def main() -> None:
    quick = "--quick" in sys.argv
    n, m = (1000, 5000) if quick else (10_000, 50_000)
    rng = random.Random(7)
    nodes = list(range(n))
    edges = set()
    while len(edges) < m:
        a, b = rng.randrange(1, n), rng.randrange(n)
        if b < a:
            edges.add((a, b))  # a depends on an earlier node: acyclic
    edges = sorted(edges)
    states = {i: ("done" if i < n // 3 else "planned") for i in nodes}
    finished = n // 3
    states_after = {**states, finished: "done"}

    rows = []
    t_cycle, cycle = timed(lambda: dag.find_cycle(nodes, edges))
    assert cycle is None
    t_ready, ready = timed(lambda: dag.ready_nodes(states, edges))
    t_unblock, _ = timed(lambda: dag.unblocked_by(finished, states_after, edges))
    t_layers, _ = timed(lambda: dag.topological_layers(nodes, edges))
    try:
        import networkx as nx

        def build():
            g = nx.DiGraph()
            g.add_nodes_from(nodes)
            g.add_edges_from(edges)
            return g

        b_build, graph = timed(build)
        baseline = "networkx " + nx.__version__
        b_cycle, _ = timed(lambda: nx.is_directed_acyclic_graph(graph))
        b_ready, _ = timed(lambda: {v for v in nodes if states[v] == "planned"
                                    and all(states[d] == "done" for d in graph.successors(v))})
        b_unblock, _ = timed(lambda: [v for v in graph.predecessors(finished) if states_after[v] == "planned"
                                      and all(states_after[d] == "done" for d in graph.successors(v))])
        b_layers, _ = timed(lambda: list(nx.topological_generations(graph.reverse(copy=False))))
    except ImportError:
        b_build = 0.0
        baseline = "plain topological sort"
        b_cycle = b_ready = b_unblock = b_layers = timed(lambda: dag.topological_layers(nodes, edges))[0]
    for what, value, base in (("cycle check", t_cycle, b_cycle), ("ready set", t_ready, b_ready),
                              ("unblock computation (one WP done)", t_unblock, b_unblock),
                              ("topological layers", t_layers, b_layers)):
        rows.append({"what": f"{what}, {n:,} WPs / {m:,} edges", "value": round(value, 2), "unit": "ms",
                     "baseline": baseline, "baseline_value": round(base, 2), "unit_baseline": "ms",
                     "note": f"agileplus works from the edge list; the baseline's graph is prebuilt "
                             f"(building it: {b_build:.1f} ms, not counted)"})
    print(f"{'what':55} {'agileplus':>12} {'baseline':>12}")
    for r in rows:
        print(f"{r['what']:55} {r['value']:>10.2f}ms {r['baseline_value']:>10.2f}ms")
    print(f"ready WPs: {len(ready)}; baseline: {baseline}")
    print("BENCH-JSON " + json.dumps({"name": "dag", "figures": rows}))


if __name__ == "__main__":
    main()
