"""/metrics with a refresh interval: scrapes serve the snapshot a thread of the web process
keeps fresh, so a scrape never runs the queries itself (they read every job)."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agileplus.dispatch.models import DispatchJob
from agileplus.operations import metrics
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db(transaction=True)  # the refresher's thread reads what was committed


def figure(text: bytes, name: str) -> float:
    return next(s.value for f in text_string_to_metric_families(text.decode()) for s in f.samples if s.name == name)


def test_scrapes_serve_the_snapshot_until_the_refresher_reads_again(settings):
    settings.METRICS_REFRESH_SECONDS = 3
    refresher = metrics.Refresher()
    try:
        assert figure(refresher.scrape(), "agileplus_jobs_active") == 0
        _feature, (wp,) = make_feature_with_wps(1)
        DispatchJob.objects.create(id="job_refresh01", feature=wp.feature, wp=wp, harness="codex",
                                   requested_by="human:alice")
        cached = refresher.scrape()
        assert figure(cached, "agileplus_jobs_active") == 0 and figure(cached, "agileplus_metrics_age_seconds") >= 0
        deadline = time.monotonic() + 30
        while figure(refresher.scrape(), "agileplus_jobs_active") == 0:
            assert time.monotonic() < deadline, "the refresher did not read the new job"
            refresher.stopping.wait(0.2)
    finally:
        refresher.stop()
