"""What the dashboard shows, read in a bounded number of queries."""

from __future__ import annotations

from django.urls import reverse

from agileplus.audit.chain import verify_chain
from agileplus.cli.output import bar
from agileplus.dashboard import layout
from agileplus.dashboard.text import visible
from agileplus.dispatch import selectors as jobs
from agileplus.dispatch.cost_reports import outcomes
from agileplus.dispatch.costs import ledger
from agileplus.dispatch.models import JobCommit
from agileplus.features.models import Feature
from agileplus.features.selectors import feature_status, features_overview
from agileplus.review.conflicts import predicted_conflicts
from agileplus.review.models import ReviewReport
from agileplus.review.selectors import merge_queues


def overview() -> list[dict]:
    return features_overview()


BOARD_PAGE = 200  # WPs per board page: a 10,000-WP feature is 50 pages, not one 5 GB render


def board(feature: Feature, *, after: str = "") -> dict:
    status = feature_status(feature, after=after, limit=BOARD_PAGE)
    for wp in status["work_packages"]:
        wp["bar"] = bar(wp["progress"])
    running = [j for j in jobs.list_jobs(feature=feature, limit=20)]
    return {
        "status": status,
        "jobs": running,
        "live_job": next((j for j in running if j.state in ("claimed", "running")), None),
        "commits": list(JobCommit.objects.filter(job__feature=feature).select_related("job__wp")
                        .order_by("-reported_at")[:20]),
        "reviews": list(ReviewReport.objects.filter(feature=feature).select_related("wp")[:10]),
        "chain": verify_chain(feature),
        "agents": jobs.agents_overview(),
        "costs": ledger(feature_id=feature.pk, by="agent"),
        "spend_outcomes": outcomes(feature_id=feature.pk),
        "conflicts": predicted_conflicts(feature, with_branches=False)[:50],
        "page": status["work_packages_page"],
        "merge_queue": merge_queues(feature, recent=5)[0],
    }


# --- the DAG -------------------------------------------------------------------------------------
DAG_LIMIT = 500  # WPs drawn at most: a larger feature is offered its table instead
LANES = ("planned", "ready", "doing", "for_review", "done", "blocked")


def lane(wp: dict) -> str:
    """The colour a WP is drawn in: its state, with a planned WP that may start now as ``ready``."""
    return "ready" if wp["state"] == "planned" and wp["ready"] else wp["state"]


def short(text: str, size: int) -> str:
    """``text`` with control characters visible, cut to ``size`` characters (… when cut)."""
    text = visible(text or "")
    return text if len(text) <= size else text[: size - 1] + "…"


def _note(wp: dict) -> str:
    """The node's third line: why it is blocked, what it waits on, what its agent does, or its estimate."""
    activity = (wp["job"] or {}).get("current_activity") or ""
    if wp["state"] == "blocked":
        return "✗ " + short(activity or "blocked", 24)
    if wp["blocked_by"]:
        return "waits on " + short(", ".join(wp["blocked_by"]), 17)
    if wp["state"] == "doing" and activity:
        return short(activity, 26)
    return f"est. {wp['estimate']}" if wp["estimate"] else ""


def _node(wp: dict, box: layout.NodeBox, slug: str, critical: bool) -> dict:
    """What one node shows, as plain strings (the template only places and escapes them: 200 nodes)."""
    drawn_as = lane(wp)
    tooltip = " · ".join(x for x in (f"{wp['code']} {visible(wp['title'])}", drawn_as, visible(wp["agent"]),
                                     "waits on " + ", ".join(wp["blocked_by"]) if wp["blocked_by"] else "") if x)
    return {"code": wp["code"], "state": wp["state"], "lane": drawn_as, "critical": critical, "x": box.x, "y": box.y,
            "href": reverse("dashboard-wp", args=[slug, wp["code"]]), "tooltip": tooltip,
            "title": short(wp["title"], 24), "agent": short(wp["agent"], 14), "note": _note(wp),
            "bar_width": round(layout.NODE_W * wp["progress"])}


def dag_view(feature: Feature) -> dict:
    """The feature's WPs as a laid-out graph, or ``too_large`` past DAG_LIMIT (about six queries)."""
    total = feature.work_packages.count()
    if total > DAG_LIMIT:
        return {"too_large": True, "total": total, "limit": DAG_LIMIT}
    status = feature_status(feature)
    wps = status["work_packages"]
    edges = [(wp["code"], d["code"]) for wp in wps for d in wp["dependencies"]]
    critical = status["estimated_completion"]["critical_path"]
    drawn = layout.layout_dag([wp["code"] for wp in wps], edges, critical=critical)
    on_path = set(critical)
    nodes = [_node(wp, drawn.nodes[wp["code"]], feature.slug, wp["code"] in on_path) for wp in wps]
    counts = {name: 0 for name in LANES}
    for node in nodes:
        counts[node["lane"]] += 1
    return {"too_large": False, "status": status, "nodes": nodes, "edges": drawn.edges, "width": drawn.width,
            "height": drawn.height, "layers": len(drawn.layers), "critical_path": critical,
            "lanes": [(name, counts[name]) for name in LANES], "total": total}
