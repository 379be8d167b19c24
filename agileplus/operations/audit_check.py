"""The audit chains verified on a schedule, and a failure told to people: an
``agileplus.audit.<feature>.verify_failed`` event (the ``audit.verify_failed`` webhook subject),
recorded once per feature and number of problems, so an hourly check does not repeat itself."""

from __future__ import annotations

from django.db import transaction

from agileplus.audit.chain import Verification, verify_chain
from agileplus.events.models import Event
from agileplus.events.services import record_event
from agileplus.features.models import Feature


def verify_failed_subject(slug: str) -> str:
    return f"agileplus.audit.{slug}.verify_failed"


def report_failure(feature: Feature, result: Verification) -> bool:
    """Record the failure's event unless the same one is already the feature's last; True if new."""
    payload = {"feature": feature.slug, "problems": len(result.problems),
               "first_problem": str(result.problems[0]) if result.problems else ""}
    with transaction.atomic():
        last = Event.objects.filter(subject=verify_failed_subject(feature.slug)).order_by("-pk").first()
        if last is not None and last.payload.get("problems") == payload["problems"]:
            return False
        record_event(verify_failed_subject(feature.slug), payload, feature_id=feature.pk)
    return True


def check_all() -> dict[str, int]:
    """Verify every feature's chain; returns the features that fail and their problem counts."""
    failing = {}
    for feature in Feature.objects.order_by("slug"):
        result = verify_chain(feature)
        if not result.ok:
            failing[feature.slug] = len(result.problems)
            report_failure(feature, result)
    return failing
