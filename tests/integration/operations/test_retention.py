"""Retention: old job logs, events, deliveries and salvage refs go; the audit chain stays."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob, JobLogLine
from agileplus.events.models import Event
from agileplus.features.models import Project
from agileplus.features.services import transition_wp
from agileplus.operations import retention
from agileplus.operations.models import WebhookDelivery
from harnesses.git import git, init_one_commit_repo
from tests.factories import make_feature_with_wps

pytestmark = [pytest.mark.django_db, pytest.mark.database]
LONG_AGO = timezone.now() - dt.timedelta(days=400)


@pytest.fixture(autouse=True)
def no_salvage_retention(settings):
    """The factories' projects have no origin: only the salvage test turns that retention on."""
    settings.RETENTION_SALVAGE_DAYS = 0


def finished_job_with_log(wp, finished_at, job_id: str) -> DispatchJob:
    job = DispatchJob.objects.create(id=job_id, feature=wp.feature, wp=wp, harness="codex",
                                     state="succeeded", requested_by="human:alice", finished_at=finished_at)
    JobLogLine.objects.bulk_create([JobLogLine(job=job, seq=i, timestamp=timezone.now(), line=f"line {i}")
                                    for i in range(1, 4)])
    return job


def test_the_log_of_a_job_finished_long_ago_is_purged_and_a_recent_one_kept(settings):
    settings.RETENTION_JOB_LOG_DAYS = 30
    _feature, (wp,) = make_feature_with_wps(1)
    old, recent = finished_job_with_log(wp, LONG_AGO, "job_1"), finished_job_with_log(wp, timezone.now(), "job_2")
    assert retention.purge()["job_log_lines"] == 3
    assert (old.log_lines.count(), recent.log_lines.count()) == (0, 3)


def test_old_events_go_and_the_audit_chain_stays(settings):
    settings.RETENTION_EVENT_DAYS, settings.NATS_URL = 30, ""
    _feature, (wp,) = make_feature_with_wps(1)
    transition_wp(wp, "doing", actor="agent:codex")
    Event.objects.update(created_at=LONG_AGO)
    events, entries = Event.objects.count(), AuditEntry.objects.count()
    assert retention.purge()["events"] == events
    assert (Event.objects.count(), AuditEntry.objects.count()) == (0, entries)


def test_an_event_not_yet_published_to_nats_is_kept(settings):
    settings.RETENTION_EVENT_DAYS, settings.NATS_URL = 30, "nats://127.0.0.1:4222"
    _feature, (wp,) = make_feature_with_wps(1)
    transition_wp(wp, "doing", actor="agent:codex")
    Event.objects.update(created_at=LONG_AGO)
    assert retention.purge()["events"] == 0


def test_a_pending_webhook_delivery_is_never_purged(settings):
    settings.RETENTION_WEBHOOK_DAYS = 30
    WebhookDelivery.objects.create(endpoint_name="gone", subject="wp.blocked", body="{}", next_attempt_at=LONG_AGO)
    WebhookDelivery.objects.create(endpoint_name="gone", subject="wp.blocked", body="{}", next_attempt_at=LONG_AGO,
                                   state=WebhookDelivery.FAILED)
    WebhookDelivery.objects.update(created_at=LONG_AGO)
    assert retention.purge()["webhook_deliveries"] == 1
    assert WebhookDelivery.objects.get().state == WebhookDelivery.PENDING


def test_old_salvage_refs_are_deleted_from_the_origin(settings, tmp_path):
    settings.RETENTION_SALVAGE_DAYS = 30
    origin = init_one_commit_repo(tmp_path / "origin", name="Ops", email="ops@localhost", readme="x\n")
    git("branch", "salvage/001-feature-WP01-20200101-120000", cwd=origin)
    fresh = f"salvage/001-feature-WP02-{timezone.now():%Y%m%d-%H%M%S}"
    git("branch", fresh, cwd=origin)
    feature, (wp,) = make_feature_with_wps(1)
    Project.objects.filter(pk=feature.project_id).update(repo_url=str(origin))
    finished_job_with_log(wp, LONG_AGO, "job_old0000001")
    git("update-ref", "refs/agileplus/salvage/job_old0000001", "HEAD", cwd=origin)
    gone = [f"{origin} refs/agileplus/salvage/job_old0000001",
            f"{origin} refs/heads/salvage/001-feature-WP01-20200101-120000"]
    assert sorted(retention.purge()["salvage_refs"]) == gone
    assert git("branch", "--list", "salvage/*", cwd=origin).split() == [fresh]


def test_a_dry_run_counts_and_deletes_nothing(settings):
    settings.RETENTION_JOB_LOG_DAYS = 30
    _feature, (wp,) = make_feature_with_wps(1)
    finished_job_with_log(wp, LONG_AGO, "job_1")
    assert retention.purge(dry_run=True)["job_log_lines"] == 3
    assert JobLogLine.objects.count() == 3
