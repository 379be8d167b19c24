"""What the dashboard shows, read in a bounded number of queries."""

from __future__ import annotations

from agileplus.audit.chain import verify_chain
from agileplus.cli.output import bar
from agileplus.dispatch import selectors as jobs
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
        "conflicts": predicted_conflicts(feature, with_branches=False)[:50],
        "page": status["work_packages_page"],
        "merge_queue": merge_queues(feature, recent=5)[0],
    }
