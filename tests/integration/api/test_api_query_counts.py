"""Every list and detail read costs a fixed number of queries, whatever the number of rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agileplus.dispatch.models import DispatchJob, JobCommit, JobLogLine, Worker
from agileplus.features.services import set_dependencies, transition_wp
from agileplus.review.models import ReviewReport
from tests.factories import make_feature_with_wps
from tests.integration.api.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

MAX_QUERIES = 15

READS = [
    "/api/projects", "/api/features", "/api/features/{slug}", "/api/features/{slug}/wps",
    "/api/features/{slug}/wps/WP02", "/api/features/{slug}/wps/WP02/reviews", "/api/features/{slug}/audit",
    "/api/features/{slug}/audit/verify", "/api/features/{slug}/costs", "/api/jobs", "/api/jobs?harness=command",
    "/api/jobs?feature={slug}&status=running", "/api/jobs/job_{number}_WP02", "/api/jobs/job_{number}_WP02/log",
    "/api/events", "/api/events?feature={slug}", "/api/agents", "/api/workers",
]


def populate(rows: int, number: int):
    """A feature with ``rows`` WPs (each depending on the one before), each with a job, commits, log
    lines, a review report and audit entries; ``rows`` workers beside it."""
    feature, wps = make_feature_with_wps(rows, number=number)
    now = timezone.now()
    for wp in wps:
        job = DispatchJob.objects.create(id=f"job_{number}_{wp.code}", feature=feature, wp=wp, harness="command",
                                         state="running", requested_by="human:t", usage={"cost_usd": 0.5})
        JobCommit.objects.bulk_create(JobCommit(job=job, sha=f"{wp.code}{i}", message="m", files=["a"])
                                      for i in range(3))
        JobLogLine.objects.bulk_create(JobLogLine(job=job, seq=i, timestamp=now, line="x") for i in range(1, rows + 1))
        for _ in range(min(rows, 5)):
            ReviewReport.objects.create(feature=feature, wp=wp, job=job, actor="ci:x", approved=False)
        transition_wp(wp, "blocked", actor="human:alice")
    set_dependencies(wps[1], [wps[0].code])
    Worker.objects.bulk_create(Worker(hostname=f"w{number}-{i}", harnesses={"command": {"available": True}},
                                      last_heartbeat=now) for i in range(rows))
    return feature


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:300])
    return len(ctx.captured_queries)


@pytest.mark.parametrize("path", READS)
def test_a_read_costs_the_same_few_queries_for_5_or_50_rows(path):
    client = client_for("human")
    small = populate(5, 101)
    queries_for(client, path.format(slug=small.slug, number=small.number))  # warm per-process caches
    counts = [queries_for(client, path.format(slug=small.slug, number=small.number))]

    large = populate(50, 102)  # global lists (jobs, events, workers…) now hold 55 rows
    counts.append(queries_for(client, path.format(slug=large.slug, number=large.number)))

    assert counts[0] == counts[1], counts
    assert counts[0] <= MAX_QUERIES
