"""The layers of docs/HACKING.md, held: every import (function-local ones included) goes to the
same layer or below, no two modules import each other round a circle, a late import says why,
and no room is too large.

Read with ``ast`` from the source, so a test failure names the file and line. A function-local
("late") import is a dependency all the same: it counts for layers and circles, and it must carry
a ``# late: <why>`` comment on its line (an optional or heavy dependency, or Django not set up
yet). ``python tests/unit/test_layers.py`` prints the counts.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agileplus", "workers", "harnesses")

# Bottom to top: a module may import its own layer and the ones before it. The module name's
# longest matching prefix decides.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("harnesses", ("harnesses",)),
    ("core", ("agileplus", "agileplus.settings", "agileplus.core", "workers.broker")),
    ("records", ("agileplus.audit", "agileplus.events")),
    ("features", ("agileplus.features",)),
    # features/selectors.py is the status screens' read model: each WP with its latest job, so it
    # reads the jobs and sits with them (its importers are the interfaces and dispatch.selectors).
    ("dispatch", ("agileplus.dispatch", "agileplus.features.selectors")),
    ("access", ("agileplus.api.models", "agileplus.api.roles", "agileplus.api.tokens")),
    # provenance: the worker's Agent Trace notes and the merge queue's signed attestations, beside
    # the gate that moves main (it reads the review's records and the jobs).
    # dispatch/cost_reports.py: what the spend bought (merged, rejected, ejected) reads the review's
    # records, so it sits with them (its importers are the interfaces).
    ("gate", ("agileplus.review", "agileplus.provenance", "agileplus.dispatch.cost_reports")),
    ("runner", ("agileplus.dispatch.runner", "agileplus.dispatch.fresh")),
    ("workflow", ("agileplus.workflow",)),
    # operating the farm: metrics, webhooks, retention, backup; it reads every app's records.
    ("operations", ("agileplus.operations",)),
    ("interfaces", ("agileplus.api", "agileplus.cli", "agileplus.mcp_server", "agileplus.dashboard",
                    "agileplus.urls", "agileplus.asgi", "agileplus.wsgi", "agileplus.__main__",
                    "workers")),
)
ISOLATED = {"harnesses"}  # no Django: imports nothing outside itself
# Each app's doors (Celery tasks, admin, views and URLs, the SSE stream) are interfaces too, and so
# is its apps.py: what Django runs as it loads the app wires the doors to the layers below.
ENTRY_MODULE = re.compile(r"^agileplus\.\w+\.(tasks|admin|views|urls|sse|apps)$")
LATE_REASON = re.compile(r"#.*\blate:\s*\S")

MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200



@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    late: bool


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
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
        if candidate and candidate != name:
            found.add(candidate)
    # `from agileplus.x import y` names the package only on the way to y
    return {t for t in found if not any(o.startswith(t + ".") for o in found)} or found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports_in(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import node with whether it runs late (inside a function); TYPE_CHECKING ones left out."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def walk(node: ast.AST, late: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    walk_one(sub, late)
                continue
            walk_one(child, late)

    def walk_one(child: ast.AST, late: bool) -> None:
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            found.append((child, late))
        else:
            walk(child, late or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(tree, False)
    return found


def all_imports() -> list[Import]:
    known = modules()
    found = []
    for name, path in known.items():
        for node, late in _imports_in(ast.parse(path.read_text(), str(path))):
            found += [Import(name, target, node.lineno, late) for target in _resolve(name, path, node, known)]
    return found


def layer_of(module: str) -> str:
    if ENTRY_MODULE.match(module):
        return "interfaces"
    best, best_len = "", -1
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = layer, len(prefix)
    assert best, f"{module} is in no layer: add it to LAYERS"
    return best


RANK = {layer: rank for rank, (layer, _) in enumerate(LAYERS)}


def upward(imports: list[Import]) -> list[Import]:
    def wrong(i: Import) -> bool:
        source, target = layer_of(i.source), layer_of(i.target)
        if source in ISOLATED or target in ISOLATED:
            return source != target and source in ISOLATED
        return RANK[target] > RANK[source]
    return [i for i in imports if wrong(i)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def graph_of(imports: list[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for i in imports:
        graph[i.source].add(i.target)
    return graph


def late_without_reason(imports: list[Import]) -> list[Import]:
    known = modules()
    lines = {name: path.read_text().splitlines() for name, path in known.items()}
    return [i for i in imports if i.late and not LATE_REASON.search(lines[i.source][i.line - 1])]


def large_rooms() -> dict[str, int]:
    """Modules over MAX_MODULE_LINES and classes over MAX_CLASS_LINES lines, with their size."""
    found = {}
    for name, path in modules().items():
        text = path.read_text()
        if (count := len(text.splitlines())) > MAX_MODULE_LINES:
            found[f"module {name}"] = count
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and (size := node.end_lineno - node.lineno + 1) > MAX_CLASS_LINES:
                found[f"class {name}.{node.name}"] = size
    return found


def _where(i: Import) -> str:
    return f"{i.source}:{i.line} → {i.target} ({layer_of(i.source)} → {layer_of(i.target)}{', late' if i.late else ''})"


def test_every_import_goes_to_its_own_layer_or_below():
    wrong = upward(all_imports())
    assert not wrong, "imports from a higher layer:\n" + "\n".join(map(_where, wrong))


def test_no_modules_import_each_other_round_a_circle():
    found = cycles(graph_of(all_imports()))
    assert not found, "import circles (late imports counted):\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_a_late_import_says_why():
    missing = late_without_reason(all_imports())
    assert not missing, "late imports without '# late: <why>' on their line:\n" + "\n".join(map(_where, missing))


def test_no_room_is_too_large():
    found = large_rooms()
    assert not found, (f"over {MAX_MODULE_LINES} lines per module or {MAX_CLASS_LINES} per class:\n"
                       + "\n".join(f"{room}: {size} lines" for room, size in found.items()))


def test_the_circle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_reader_sees_late_imports_and_their_layers():
    found = {(i.source, i.target, i.late) for i in all_imports()}
    assert ("agileplus.dispatch.services", "agileplus.features.services", False) in found
    assert layer_of("agileplus.review.tasks") == layer_of("agileplus.dispatch.apps") == "interfaces"
    assert layer_of("agileplus.review.merge_queue") == "gate"
    assert upward([Import("agileplus.features.x", "agileplus.workflow.y", 1, True)])
    assert upward([Import("harnesses.x", "agileplus.core.y", 1, False)])
    assert not upward([Import("agileplus.dispatch.x", "harnesses.y", 1, False)])


def report() -> None:
    imports = all_imports()
    found = cycles(graph_of(imports))
    print(f"circles: {len(found)} ({sum(map(len, found))} modules)")
    for c in found:
        print("   ", " ↔ ".join(c))
    wrong = upward(imports)
    print(f"upward imports: {len(wrong)}")
    for i in wrong:
        print("   ", _where(i))
    print(f"late imports: {sum(i.late for i in imports)}, without a reason: {len(late_without_reason(imports))}")
    rooms = large_rooms()
    print(f"large rooms: {len(rooms)}")
    for room, size in sorted(rooms.items(), key=lambda r: -r[1]):
        print(f"    {room}: {size} lines")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    report()
