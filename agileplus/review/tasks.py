"""Review's Celery task (auto mode): review as ci:automation; merge when approved."""

from __future__ import annotations

from agileplus.core.errors import DomainError
from agileplus.features.lifecycles import WPState
from agileplus.features.models import WorkPackage
from agileplus.review.merge import MergeConflict
from agileplus.review.services import run_review, send_back_after_conflict
from workers.celery import app


@app.task(name="review.review_wp", acks_late=True)
def review_wp(wp_id: int) -> dict:
    wp = WorkPackage.objects.select_related("feature__project").get(pk=wp_id)
    if wp.state != WPState.FOR_REVIEW:
        return {"skipped": wp.state}
    try:
        review = run_review(wp, apply=True)
    except MergeConflict as exc:  # main moved between the review and the merge
        send_back_after_conflict(wp, exc)
        return {"error": exc.as_dict()}
    except DomainError as exc:
        return {"error": exc.as_dict()}
    return {"approved": review.approved, "report": review.report.pk}
