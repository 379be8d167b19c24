"""feature_status: the shared JSON shape, job details on the screens, bounded queries."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agileplus.dispatch.models import DispatchJob, JobCommit
from agileplus.features.models import WorkPackage
from agileplus.features.selectors import feature_status
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


def _job(wp, state, **fields):
    job = DispatchJob.objects.create(id=f"job-{wp.pk}-{state}", feature=wp.feature, wp=wp, harness="claude-code",
                                     state=state, requested_by="human:alice", **fields)
    return job


def test_a_running_wp_shows_session_start_files_commits_and_current_task():
    feature, (wp1, wp2) = make_feature_with_wps(2, chain=False)
    WorkPackage.objects.filter(pk=wp1.pk).update(state="doing")
    job = _job(wp1, "running", session_id="sess_w7k2j3l9m", current_activity="writing tests",
               started_at=dt.datetime(2024, 3, 1, 10, 15, 33, tzinfo=dt.UTC))
    JobCommit.objects.create(job=job, sha="d6c1a9f", message="feat(WP01): a", files=["a.rs", "b.rs"])
    JobCommit.objects.create(job=job, sha="a8f2b5e", message="feat(WP01): b", files=["b.rs", "c.rs", "d.rs"])
    out = run_cli(f"status {feature.slug}").output
    for line in ("██████░░░░░░ doing (claude-code)", "Session: sess_w7k2j3l9m",
                 "Started: 10:15 UTC", "Files changed: 4", "Commits: 2", "Current task: writing tests"):
        assert line in out


def test_a_done_wp_shows_commits_files_tests_agent_and_when():
    feature, (wp1,) = make_feature_with_wps(1)
    WorkPackage.objects.filter(pk=wp1.pk).update(state="done", done_at=timezone.now() - dt.timedelta(days=2))
    job = _job(wp1, "succeeded", result={"tests_passed": 18, "tests_total": 18},
               finished_at=timezone.now() - dt.timedelta(days=2))
    for i in range(4):
        JobCommit.objects.create(job=job, sha=f"c{i}", message="m", files=["x.rs", "y.rs", "z.rs"][: i + 1])
    out = run_cli(f"status {feature.slug}").output
    assert "Commits: 4 | Files: 3 | Tests: 18/18 passing" in out
    assert "Agent: claude-code | Completed: 2 days ago" in out


def test_status_json_has_the_stable_shape():
    feature, _ = make_feature_with_wps(2)
    data = feature_status(feature)
    assert set(data) == {"feature", "work_packages", "totals", "estimated_completion"}
    assert data["work_packages"][1]["blocked_by"] == ["WP01"]
    assert data["work_packages"][0]["ready"] is True
    assert data["totals"] == {"done": 0, "total": 2, "percent": 0}


def test_estimated_completion_follows_the_critical_path_of_remaining_work():
    feature, (wp1, wp2, wp3) = make_feature_with_wps(3, chain=False)
    WorkPackage.objects.filter(pk=wp1.pk).update(estimate_days=5)
    WorkPackage.objects.filter(pk=wp2.pk).update(estimate_days=2)
    WorkPackage.objects.filter(pk=wp3.pk).update(estimate_days=2)
    wp3.dependencies.add(wp2)
    assert feature_status(feature)["estimated_completion"]["days"] == 5
    WorkPackage.objects.filter(pk=wp1.pk).update(state="done")
    assert feature_status(feature)["estimated_completion"] == {"days": 4.0, "estimate": "4 days",
                                                               "critical_path": ["WP02", "WP03"]}


def test_the_query_count_does_not_grow_with_work_packages_or_jobs():
    def count(n):
        feature, wps = make_feature_with_wps(n)
        for wp in wps:
            job = _job(wp, "succeeded")
            JobCommit.objects.create(job=job, sha="s", message="m", files=["f"])
        with CaptureQueriesContext(connection) as ctx:
            feature_status(feature)
        return len(ctx.captured_queries)

    assert count(2) == count(12) <= 7  # feature, WPs+deps, latest jobs, commits, review history…


def test_status_without_a_feature_lists_one_line_per_feature():
    f1, _ = make_feature_with_wps(2)
    f2, _ = make_feature_with_wps(1)
    lines = run_cli("status").output.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f1.slug) and "0/2 WPs" in lines[0]


def test_status_of_an_unknown_feature_exits_4():
    assert run_cli("status 999-nothing").exit_code == 4
