"""No import cycle between the modules of agileplus/, workers/ and harnesses/, read with ast.

What counts as an edge: an import executed when the module loads, i.e. at module level,
in a class body, or under a module-level ``if``/``try`` (except ``if TYPE_CHECKING:``).
An import inside a function runs only when the function is called, after every module has
loaded, so it cannot take part in an import-time cycle and is not an edge. Such imports are
kept for the few deliberate upward calls (a task-layer doorbell, the workflow's hook in
``transition_wp``, optional dependencies) and are counted and capped below, so they cannot
become the way around this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agileplus", "workers", "harnesses")
# Function-local imports allowed in agileplus/: 79 on 2026-12-01, 14 after the clean-up (task-layer
# doorbells, the workflow hook, optional or heavy dependencies: nats, rich, uvicorn, mcp, Celery).
MAX_FUNCTION_LOCAL_IMPORTS = 20


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def load_time_imports(tree: ast.Module):
    """Import nodes run when the module loads (not in functions, not under TYPE_CHECKING)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []) or [])
        elif isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)


def function_local_imports(tree: ast.Module) -> int:
    count = 0
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            count += sum(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(fn))
            # nested functions are walked again by the outer ast.walk: count each import once
            count -= sum(isinstance(n, (ast.Import, ast.ImportFrom))
                         for inner in ast.walk(fn) if inner is not fn
                         and isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef))
                         for n in ast.walk(inner))
    return count


def targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([node.module] if node.module else []))
        candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
    found = set()
    for candidate in candidates:
        while candidate and candidate not in known:  # `import a.b.c` / `from a.b import name`
            candidate = candidate.rpartition(".")[0]
        if candidate:
            found.add(candidate)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set().union(*(targets(name, path, n, known) for n in load_time_imports(tree))) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_the_graph_sees_module_level_imports_and_not_function_local_ones():
    graph = import_graph()
    assert "agileplus.features.services" in graph["agileplus.dispatch.services"]
    assert "agileplus.dispatch.tasks" not in graph["agileplus.dispatch.services"]  # the doorbell's late import


def test_function_local_imports_stay_within_their_cap():
    count = sum(function_local_imports(ast.parse(p.read_text())) for n, p in modules().items()
                if n.startswith("agileplus."))
    assert count <= MAX_FUNCTION_LOCAL_IMPORTS, f"{count} function-local imports in agileplus/"
