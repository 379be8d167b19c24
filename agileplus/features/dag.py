"""Dependency-graph algorithms over plain ids, linear in nodes + edges."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping


def find_cycle(nodes: Iterable[Hashable], edges: Iterable[tuple[Hashable, Hashable]]) -> list | None:
    """Return one cycle as a node path ``[a, b, ..., a]`` or None. ``(a, b)`` means a depends on b."""
    graph: dict = defaultdict(list)
    all_nodes = list(nodes)
    for a, b in edges:
        graph[a].append(b)
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(all_nodes, WHITE)
    for root in all_nodes:
        if color.get(root, WHITE) != WHITE:
            continue
        # Iterative DFS: deep chains must not hit the recursion limit.
        stack = [(root, iter(graph[root]))]
        path = [root]
        color[root] = GREY
        while stack:
            node, children = stack[-1]
            advanced = False
            for child in children:
                state = color.get(child, WHITE)
                if state == GREY:
                    return path[path.index(child):] + [child]
                if state == WHITE:
                    color[child] = GREY
                    stack.append((child, iter(graph[child])))
                    path.append(child)
                    advanced = True
                    break
            if not advanced:
                color[node] = BLACK
                stack.pop()
                path.pop()
    return None


def is_ready(state: str, dependency_states: Iterable[str], *, waiting: str = "planned", done: str = "done") -> bool:
    """THE readiness rule: a WP is ready when it is ``waiting`` (planned) and every dependency is
    ``done``. The CLI, the API, the workflow and the two functions below all ask it."""
    return state == waiting and all(s == done for s in dependency_states)


def ready_nodes(states: Mapping[Hashable, str], edges: Iterable[tuple[Hashable, Hashable]],
                *, waiting: str = "planned", done: str = "done") -> set:
    """Nodes that are ready (``is_ready``). A node with a dependency not done is ruled out first,
    so a large graph is decided in one pass over the edges and few calls."""
    blocked = {a for a, b in edges if states.get(b) != done}
    return {n for n, s in states.items() if n not in blocked and is_ready(s, (), waiting=waiting, done=done)}


def topological_layers(nodes: Iterable[Hashable], edges: Iterable[tuple[Hashable, Hashable]]) -> list[list]:
    """Kahn's algorithm: layer 0 has no dependencies, layer k depends only on earlier layers."""
    nodes = list(nodes)
    indegree = dict.fromkeys(nodes, 0)
    dependents: dict = defaultdict(list)
    for a, b in edges:
        indegree[a] += 1
        dependents[b].append(a)
    layer = [n for n in nodes if indegree[n] == 0]
    layers = []
    while layer:
        layers.append(layer)
        nxt = []
        for n in layer:
            for d in dependents[n]:
                indegree[d] -= 1
                if indegree[d] == 0:
                    nxt.append(d)
        layer = nxt
    return layers


def critical_path(weights: Mapping[Hashable, float], edges: Iterable[tuple[Hashable, Hashable]]) -> tuple[float, list]:
    """Longest weighted chain through the DAG: the lower bound on its wall time."""
    edges = list(edges)
    deps: dict = defaultdict(list)
    for a, b in edges:
        deps[a].append(b)
    best: dict = {}
    via: dict = {}
    for layer in topological_layers(weights.keys(), edges):
        for n in layer:
            prior = max(deps[n], key=lambda d: best[d], default=None)
            best[n] = weights[n] + (best[prior] if prior is not None else 0)
            via[n] = prior
    if not best:
        return 0, []
    end = max(best, key=best.get)
    path = [end]
    while via[path[-1]] is not None:
        path.append(via[path[-1]])
    return best[end], list(reversed(path))


def unblocked_by(finished: Hashable, states: Mapping[Hashable, str], edges: Iterable[tuple[Hashable, Hashable]],
                 *, waiting: str = "planned", done: str = "done") -> list:
    """Dependents of ``finished`` (now ``done``) that are waiting and have every dependency done."""
    deps: dict = defaultdict(list)
    dependents = []
    for a, b in edges:
        deps[a].append(b)
        if b == finished:
            dependents.append(a)

    def state(node: Hashable) -> str | None:
        return done if node == finished else states.get(node)

    return [d for d in dependents if is_ready(state(d), (state(x) for x in deps[d]), waiting=waiting, done=done)]
