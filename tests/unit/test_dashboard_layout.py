"""The dashboard's pictures are laid out on the server: the DAG in dependency layers (stable
order, edges dependency → dependent, the critical path marked), the timeline's bars on a time
axis, the cost chart's stacked bars."""

from __future__ import annotations

import datetime as dt

from agileplus.dashboard import layout
from agileplus.features import dag

DIAMOND = [("WP02", "WP01"), ("WP03", "WP01"), ("WP04", "WP02"), ("WP04", "WP03")]


def test_each_wp_is_drawn_in_the_layer_after_its_deepest_dependency():
    drawn = layout.layout_dag(["WP01", "WP02", "WP03", "WP04"], DIAMOND)

    assert drawn.layers == [["WP01"], ["WP02", "WP03"], ["WP04"]]
    assert {c: b.layer for c, b in drawn.nodes.items()} == {"WP01": 0, "WP02": 1, "WP03": 1, "WP04": 2}


def test_every_edge_runs_left_to_right_from_the_dependency_to_the_dependent():
    drawn = layout.layout_dag(["WP01", "WP02", "WP03", "WP04"], DIAMOND)

    assert sorted((e.source, e.target) for e in drawn.edges) == sorted((b, a) for a, b in DIAMOND)
    for edge in drawn.edges:
        assert drawn.nodes[edge.source].x + layout.NODE_W < drawn.nodes[edge.target].x
        assert edge.d.startswith(f"M{drawn.nodes[edge.source].x + layout.NODE_W} ")


def test_the_same_graph_gives_the_same_picture_whatever_order_it_comes_in():
    nodes = [f"WP{i:02d}" for i in range(1, 41)]
    edges = [(f"WP{i:02d}", f"WP{(i * 7) % (i - 1) + 1:02d}") for i in range(3, 41)]

    first = layout.layout_dag(nodes, edges)
    again = layout.layout_dag(list(reversed(nodes)), list(reversed(edges)))

    assert first.nodes == again.nodes and first.edges == again.edges


def test_wps_in_a_layer_follow_the_rows_of_their_dependencies_to_avoid_crossings():
    # WP02 is above WP03; their dependents come in the opposite code order and are swapped back.
    edges = [("WP10", "WP03"), ("WP11", "WP02")]

    drawn = layout.layout_dag(["WP02", "WP03", "WP10", "WP11"], edges)

    assert drawn.layers[1] == ["WP11", "WP10"]


def test_a_wide_layer_wraps_into_columns_and_no_two_boxes_overlap():
    nodes = ["WP000"] + [f"WP{i:03d}" for i in range(1, 200)]
    edges = [(n, "WP000") for n in nodes[1:]]

    drawn = layout.layout_dag(nodes, edges)

    corners = {(b.x, b.y) for b in drawn.nodes.values()}
    assert len(corners) == 200
    assert drawn.height <= 2 * layout.PAD + layout.MAX_ROWS * (layout.NODE_H + layout.ROW_GAP)
    assert all(b.x + layout.NODE_W <= drawn.width and b.y + layout.NODE_H <= drawn.height for b in drawn.nodes.values())


def test_the_edges_along_the_critical_path_are_marked_and_no_other():
    weights = {"WP01": 1.0, "WP02": 3.0, "WP03": 1.0, "WP04": 1.0}
    days, path = dag.critical_path(weights, DIAMOND)

    drawn = layout.layout_dag(list(weights), DIAMOND, critical=path)

    assert (days, path) == (5.0, ["WP01", "WP02", "WP04"])
    assert {(e.source, e.target) for e in drawn.edges if e.critical} == {("WP01", "WP02"), ("WP02", "WP04")}


def test_a_wp_in_a_dependency_cycle_is_still_drawn_last():
    drawn = layout.layout_dag(["WP01", "WP02", "WP03"], [("WP02", "WP03"), ("WP03", "WP02")])

    assert drawn.layers == [["WP01"], ["WP02", "WP03"]]


T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def span(row: str, start_min: float, end_min: float | None, outcome: str = "succeeded") -> layout.Span:
    end = None if end_min is None else T0 + dt.timedelta(minutes=end_min)
    return layout.Span(row, T0 + dt.timedelta(minutes=start_min), end, "job", outcome, "WP01")


def test_a_bar_spans_from_claim_to_end_on_its_workers_row():
    t = layout.layout_timeline([span("w1", 0, 10), span("w2", 5, 10), span("w1", 10, 20)],
                               start=T0, end=T0 + dt.timedelta(minutes=20), width=1150)

    assert t.rows == ["w1", "w2"]
    assert [(b.row, b.x, b.width) for b in t.bars] == [(0, 150.0, 500.0), (1, 400.0, 250.0), (0, 650.0, 500.0)]


def test_a_running_job_reaches_now_and_a_bar_before_the_window_is_clipped():
    t = layout.layout_timeline([span("w1", -30, 5), span("w1", 15, None, "running")],
                               start=T0, end=T0 + dt.timedelta(minutes=20), width=1150,
                               now=T0 + dt.timedelta(minutes=18))

    assert (t.bars[0].x, t.bars[0].width) == (150.0, 250.0)
    assert t.bars[1].x + t.bars[1].width == 1150.0
    assert t.now_x == 1050.0


def test_a_very_short_job_is_still_a_visible_bar():
    t = layout.layout_timeline([span("w1", 0, 0.001)], start=T0, end=T0 + dt.timedelta(hours=24), width=1150)

    assert t.bars[0].width == 2.0


def test_the_cost_chart_stacks_each_days_harnesses_scaled_to_the_costliest_day():
    chart = layout.cost_chart({("2026-12-05", "codex"): 1.0, ("2026-12-05", "claude-code"): 3.0,
                               ("2026-12-06", "codex"): 2.0})

    assert chart["harnesses"] == ["claude-code", "codex"] and [d for _, d in chart["days"]] == ["2026-12-05",
                                                                                                 "2026-12-06"]
    heights = {(s.day, s.harness): s.height for s in chart["segments"]}
    full = layout.CHART_H - 10
    assert heights == {("2026-12-05", "claude-code"): full * 0.75, ("2026-12-05", "codex"): full * 0.25,
                       ("2026-12-06", "codex"): full * 0.5}

