"""Geometry of the dashboard's pictures, computed on the server (no JavaScript library): the
feature's DAG (nodes in dependency layers), the farm's timeline (bars on a time axis) and the
cost chart (bars by day and harness). Pure functions over plain values, unit tested."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.utils import timezone

from agileplus.dispatch.costs import natural_key
from agileplus.features import dag

NODE_W, NODE_H = 168, 50          # one WP box
COL_GAP, ROW_GAP = 56, 12         # between layers; between boxes of a layer
MAX_ROWS = 20                     # a wider layer wraps into sub-columns (200 WPs stay on a screen or two)
PAD = 16


@dataclass(frozen=True)
class NodeBox:
    code: str
    layer: int
    row: int
    x: int
    y: int


@dataclass(frozen=True)
class EdgePath:
    source: str   # the dependency
    target: str   # the dependent
    d: str        # the SVG path
    critical: bool = False


@dataclass
class DagLayout:
    nodes: dict[str, NodeBox] = field(default_factory=dict)
    edges: list[EdgePath] = field(default_factory=list)
    layers: list[list[str]] = field(default_factory=list)
    width: int = 0
    height: int = 0


def ordered_layers(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Dependency layers (layer 0 depends on nothing; ``(a, b)``: a depends on b), each ordered by
    the mean row of its dependencies in the layers before (fewer crossings), ties by WP code: the
    same graph always gives the same picture. Nodes in a cycle (refused at import) go last."""
    edges = list(edges)
    deps: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        deps[a].append(b)
    layers = [sorted(layer, key=natural_key) for layer in dag.topological_layers(nodes, edges)]
    placed = {n for layer in layers for n in layer}
    if len(placed) < len(nodes):
        layers.append(sorted((n for n in nodes if n not in placed), key=natural_key))
    row: dict[str, float] = {}
    for i, layer in enumerate(layers):
        if i:
            layer.sort(key=lambda n: (_mean(row[d] for d in deps[n] if d in row), natural_key(n)))
        row.update((n, j) for j, n in enumerate(layer))
    return layers


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else -1.0


def layout_dag(nodes: Sequence[str], edges: Sequence[tuple[str, str]], *, critical: Sequence[str] = ()) -> DagLayout:
    """Positions of every node (left to right by layer) and the path of every edge, from the
    dependency's right side to the dependent's left side; edges between consecutive critical-path
    nodes are marked critical."""
    layout = DagLayout(layers=ordered_layers(nodes, edges))
    x = PAD
    for i, layer in enumerate(layout.layers):
        columns = (len(layer) + MAX_ROWS - 1) // MAX_ROWS
        for j, code in enumerate(layer):
            col, row = divmod(j, MAX_ROWS)
            layout.nodes[code] = NodeBox(code, i, j, x + col * (NODE_W + COL_GAP // 2), PAD + row * (NODE_H + ROW_GAP))
        x += columns * NODE_W + (columns - 1) * (COL_GAP // 2) + COL_GAP
    layout.width = max(x - COL_GAP + PAD, 2 * PAD)
    rows = max((min(len(layer), MAX_ROWS) for layer in layout.layers), default=0)
    layout.height = 2 * PAD + max(rows * (NODE_H + ROW_GAP) - ROW_GAP, 0)
    steps = set(zip(critical, critical[1:], strict=False))
    for dependent, dependency in sorted(edges, key=lambda e: (natural_key(e[1]), natural_key(e[0]))):
        a, b = layout.nodes[dependency], layout.nodes[dependent]
        layout.edges.append(EdgePath(dependency, dependent, _curve(a, b), (dependency, dependent) in steps))
    return layout


def _curve(a: NodeBox, b: NodeBox) -> str:
    x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
    x2, y2 = b.x, b.y + NODE_H // 2
    bend = max((x2 - x1) // 2, 20)
    return f"M{x1} {y1} C{x1 + bend} {y1} {x2 - bend} {y2} {x2} {y2}"


# --- the timeline --------------------------------------------------------------------------------
LABEL_W, ROW_H, BAR_H, AXIS_H = 150, 30, 20, 24


@dataclass(frozen=True)
class Bar:
    row: int
    x: float
    width: float
    kind: str      # job | review | candidate | merge
    outcome: str   # the job's state, the review's state, the batch's outcome
    label: str
    href: str = ""
    title: str = ""

    @property
    def y(self) -> int:
        return AXIS_H + self.row * ROW_H + (ROW_H - BAR_H) // 2

    @property
    def text_x(self) -> float:
        return round(self.x + 4, 1)

    @property
    def text_y(self) -> int:
        return self.y + BAR_H - 6


@dataclass(frozen=True)
class Span:
    """Something that ran from ``start`` to ``end`` (None: still running) on one row."""

    row: str
    start: dt.datetime
    end: dt.datetime | None
    kind: str
    outcome: str
    label: str
    href: str = ""
    title: str = ""


@dataclass
class Timeline:
    rows: list[str]
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    start: dt.datetime
    end: dt.datetime
    width: int
    height: int
    now: dt.datetime | None = None

    @property
    def plot_width(self) -> int:
        """The width of the time axis alone (the row names are drawn beside it, not scrolled)."""
        return self.width - LABEL_W

    @property
    def now_x(self) -> float:
        return time_x(self.now or self.end, self.start, self.end, self.width)

    @property
    def row_labels(self) -> list[tuple[int, int, str]]:
        """(text y, separator y, name) per row."""
        return [(AXIS_H + i * ROW_H + ROW_H // 2 + 4, AXIS_H + (i + 1) * ROW_H, name)
                for i, name in enumerate(self.rows)]


def time_x(moment: dt.datetime, start: dt.datetime, end: dt.datetime, width: int) -> float:
    """The x of ``moment`` on an axis drawn from ``start`` (x = LABEL_W) to ``end`` (x = width)."""
    span = max((end - start).total_seconds(), 1.0)
    offset = min(max((moment - start).total_seconds(), 0.0), span)
    return round(LABEL_W + (width - LABEL_W) * offset / span, 1)


def layout_timeline(spans: Sequence[Span], *, start: dt.datetime, end: dt.datetime, width: int = 1100,
                    ticks: int = 6, now: dt.datetime | None = None) -> Timeline:
    """One row per name in order of first appearance; each span a bar clipped to [start, end]; a
    running span reaches ``end`` (now). Bars are at least 2 px wide so a short job stays visible."""
    rows: list[str] = []
    for span in spans:
        if span.row not in rows:
            rows.append(span.row)
    bars = []
    for span in spans:
        x1 = time_x(span.start, start, end, width)
        x2 = time_x(span.end or end, start, end, width)
        bars.append(Bar(rows.index(span.row), x1, max(round(x2 - x1, 1), 2.0), span.kind, span.outcome, span.label,
                        span.href, span.title))
    step = (end - start) / max(ticks, 1)
    shape = "%H:%M:%S" if end - start <= dt.timedelta(minutes=15) else "%H:%M"
    marks = [(time_x(start + step * i, start, end, width), timezone.localtime(start + step * i).strftime(shape))
             for i in range(ticks)]  # the last would sit on the right edge, cut in half
    return Timeline(rows, bars, marks, start, end, width, AXIS_H + max(len(rows), 1) * ROW_H + 4, now)


# --- the cost chart ------------------------------------------------------------------------------
CHART_H, CHART_BAR_W, CHART_GAP = 160, 28, 14


@dataclass(frozen=True)
class Segment:
    day: str
    harness: str
    x: int
    y: float
    width: int
    height: float
    cost: float
    index: int  # the harness's colour


def cost_chart(costs: Mapping[tuple[str, str], float]) -> dict:
    """Stacked bars: one per day, one segment per harness, heights scaled to the costliest day."""
    days = sorted({d for d, _ in costs}, key=natural_key)
    harnesses = sorted({h for _, h in costs}, key=natural_key)
    top = max((sum(costs.get((d, h), 0.0) for h in harnesses) for d in days), default=0.0) or 1.0
    segments = []
    for i, day in enumerate(days):
        x, y = 40 + i * (CHART_BAR_W + CHART_GAP), float(CHART_H)
        for j, harness in enumerate(harnesses):
            cost = costs.get((day, harness), 0.0)
            if cost <= 0:
                continue
            height = round(cost / top * (CHART_H - 10), 1)
            y -= height
            segments.append(Segment(day, harness, x, round(y, 1), CHART_BAR_W, height, cost, j))
    return {"days": [(40 + i * (CHART_BAR_W + CHART_GAP), d) for i, d in enumerate(days)], "harnesses": harnesses,
            "segments": segments, "top": top, "width": 60 + len(days) * (CHART_BAR_W + CHART_GAP),
            "height": CHART_H + 40}

