"""The dashboard's pages: the DAG drawn, a WP's and a job's page, the farm's timeline and farm
page. Strings from agents and specs are shown as text; actions follow the API's role rules."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from agileplus.api.models import ApiRole
from agileplus.dispatch.models import DispatchJob, JobCommit, JobLogLine, Worker
from agileplus.features.models import Dependency
from agileplus.features.services import record_wp_entry
from agileplus.review.models import MergeQueueEntry, ReviewReport, ReviewRequest
from harnesses.git import git, init_one_commit_repo
from tests.factories import WorkPackageFactory, make_feature_with_wps, make_large_feature

pytestmark = pytest.mark.django_db
HOSTILE = "<img src=x onerror=alert(1)>\x1b[31mred"


def diamond():
    feature, (a, b, c, d) = make_feature_with_wps(4, chain=False)
    for wp, dep in ((b, a), (c, a), (d, b), (d, c)):
        Dependency.objects.create(wp=wp, depends_on=dep)
    return feature, (a, b, c, d)


def job(wp, job_id="job_1", **fields):
    return DispatchJob.objects.create(id=job_id, feature=wp.feature, wp=wp, harness=fields.pop("harness", "codex"),
                                      requested_by="human:x", **fields)


def test_the_dag_page_draws_one_node_per_wp_and_one_edge_per_dependency(browser):
    feature, _ = diamond()

    page = browser.get(f"/features/{feature.slug}/dag").content.decode()

    assert 'data-nodes="4" data-edges="4"' in page
    assert len(re.findall(r'<a class="node ', page)) == 4 and len(re.findall(r'<path class="edge', page)) == 4
    assert 'data-wp="WP01" data-state="planned" data-lane="ready"' in page
    assert "waits on WP02, WP03" in page


def test_the_dag_marks_the_critical_path_and_the_eta(browser):
    feature, (a, b, c, d) = diamond()
    for wp, days in ((a, 1), (b, 3), (c, 1), (d, 1)):
        wp.estimate_days = days
        wp.save()

    page = browser.get(f"/features/{feature.slug}/dag").content.decode()

    assert 'id="critical-path" class="critical-text">WP01 → WP02 → WP04<' in page
    assert '<b id="dag-eta">5 days</b>' in page
    assert page.count('class="edge critical"') == 2


def test_a_feature_too_large_to_draw_says_so_and_offers_the_table(browser):
    feature = make_large_feature(501)

    page = browser.get(f"/features/{feature.slug}/dag").content.decode()

    assert "This feature has 501 work packages: more than the 500" in page
    assert f'href="/features/{feature.slug}/"' in page and "<svg" not in page.split("<main>")[1]


def test_a_hostile_title_is_shown_as_text_with_its_escape_visible(browser):
    feature, (wp,) = make_feature_with_wps(1, title="t")
    wp.title = HOSTILE
    wp.save()

    for url in (f"/features/{feature.slug}/dag", f"/features/{feature.slug}/wps/WP01"):
        page = browser.get(url).content.decode()
        assert "<img" not in page and "\x1b" not in page
        assert "&lt;img src=x onerror=alert(1)&gt;␛[31mred" in page


def test_the_wp_page_shows_attempts_with_their_cost_governance_findings_and_salvage_refs(browser):
    feature, (wp,) = make_feature_with_wps(1)
    job(wp, "job_a", state="failed", attempt=2, worker="w1", usage={"input_tokens": 900, "output_tokens": 80,
                                                                    "cost_usd": "0.0125"})
    record_wp_entry(wp, actor="system:agileplus", transition="WP01:doing->blocked",
                    metadata={"reason": "governance_violation",
                              "violations": [{"rule": "owned_paths", "detail": "touches src/other.py",
                                              "commit": "a" * 40, "path": "src/other.py"}]})
    record_wp_entry(wp, actor="human:x", transition="WP01:fresh_start",
                    metadata={"old_branch": "feat/x-WP01", "salvage_branch": "salvage/x-WP01-20261206-120000",
                              "salvaged_sha": "b" * 40})

    page = browser.get(f"/features/{feature.slug}/wps/WP01").content.decode()

    assert 'data-job="job_a" data-state="failed"' in page and "900 / 80 (0)" in page and "$0.0125" in page
    assert "owned_paths: touches src/other.py" in page
    assert "salvage/x-WP01-20261206-120000" in page and "bbbbbbb" in page


def test_the_wp_page_shows_the_review_report_by_section(browser):
    feature, (wp,) = make_feature_with_wps(1)
    ReviewReport.objects.create(feature=feature, wp=wp, actor="ci:automation", approved=False, checks=[
        {"name": "pytest", "section": "tests", "ok": False, "lines": ["1 failed"]},
        {"name": "ruff", "section": "lint", "ok": True, "lines": []}])

    page = browser.get(f"/features/{feature.slug}/wps/WP01").content.decode()

    assert "CHANGES REQUESTED" in page
    assert re.search(r"<details class=\"section\" open><summary><span class=\"bad\">✗</span> tests \(1\)", page)
    assert re.search(r"<details class=\"section\"><summary><span class=\"ok\">✓</span> lint \(1\)", page)


def test_a_review_report_says_on_which_worker_its_run_started_and_how_long_it_took(browser):
    feature, (wp,) = make_feature_with_wps(1)
    report = ReviewReport.objects.create(feature=feature, wp=wp, actor="ci:automation", approved=True, checks=[])
    started = timezone.now() - dt.timedelta(seconds=30)
    ReviewRequest.objects.create(feature=feature, wp=wp, actor="ci:automation", apply=True, state="done",
                                 worker="w-review", report=report, started_at=started,
                                 finished_at=started + dt.timedelta(seconds=12.5))

    page = browser.get(f"/features/{feature.slug}/wps/WP01").content.decode()

    local = timezone.localtime(started).strftime("%H:%M:%S")
    assert f'<span class="review-run">ran on w-review from {local} for 12.5 s</span>' in page


def login(role: str, **extra) -> Client:
    user = User.objects.create_user(f"{role}-user")
    ApiRole.objects.create(user=user, role=role, **extra)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_a_person_sees_the_dispatch_button_and_an_agent_sees_none():
    feature, (wp,) = make_feature_with_wps(1)
    url = f"/features/{feature.slug}/wps/WP01"

    human = login("human").get(url).content.decode()
    agent = login("agent", agent="codex").get(url).content.decode()

    assert f'data-name="dispatch" data-url="/api/features/{feature.slug}/implement"' in human
    assert 'class="action"' not in agent


def test_an_agent_that_posts_the_dispatch_anyway_is_refused_403():
    feature, (wp,) = make_feature_with_wps(1)
    client = login("agent", agent="codex")
    client.get(f"/features/{feature.slug}/wps/WP01")  # sets the CSRF cookie, as the page does

    answer = client.post(f"/api/features/{feature.slug}/implement", {"wps": ["WP01"]}, content_type="application/json",
                         HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)

    assert answer.status_code == 403 and answer.json()["error"]["field"] == "role"
    assert not DispatchJob.objects.exists()


def test_a_post_without_the_csrf_token_is_refused():
    feature, (wp,) = make_feature_with_wps(1)
    client = login("human")

    answer = client.post(f"/api/features/{feature.slug}/implement", {"wps": ["WP01"]}, content_type="application/json")

    assert answer.status_code == 403 and not DispatchJob.objects.exists()


def test_the_job_page_shows_the_readable_log_and_the_raw_one_on_demand(browser):
    feature, (wp,) = make_feature_with_wps(1)
    j = job(wp)
    now = timezone.now()
    for seq, (stream, line) in enumerate((("setup", "Workspace setup:"), ("agent", "Reading src/app.py"),
                                          ("stderr", "warning: \x1b[1mbold"), ("agileplus", "Commit: add app")), 1):
        JobLogLine.objects.create(job=j, seq=seq, timestamp=now, stream=stream, line=line)

    readable = browser.get("/jobs/job_1").content.decode()
    raw = browser.get("/jobs/job_1?raw=1").content.decode()

    assert "Reading src/app.py" in readable and "Commit: add app" in readable and "Workspace setup" not in readable
    assert "Workspace setup:" in raw and "warning: ␛[1mbold" in raw and "\x1b" not in raw


def test_the_job_pages_readable_log_has_the_activity_lines_and_the_raw_one_the_tool_lines(browser):
    feature, (wp,) = make_feature_with_wps(1)
    j = job(wp)
    now = timezone.now()
    for seq, (stream, line) in enumerate((("tool", "Write: /srv/worker/.worktrees/WP01/src/app.py"),
                                          ("activity", "Created src/app.py (12 lines)")), 1):
        JobLogLine.objects.create(job=j, seq=seq, timestamp=now, stream=stream, line=line)

    readable = browser.get("/jobs/job_1").content.decode()
    raw = browser.get("/jobs/job_1?raw=1").content.decode()

    assert "Created src/app.py (12 lines)" in readable and "/srv/worker" not in readable
    assert "Write: /srv/worker/.worktrees/WP01/src/app.py" in raw and "Created src/app.py" not in raw


def test_the_job_page_shows_each_commits_diff_read_from_the_origin(browser, tmp_path):
    origin = init_one_commit_repo(tmp_path / "origin", name="t", email="t@example.com", readme="hello\n")
    (origin / "app.py").write_text("print('hi')\n")
    git("add", "app.py", cwd=origin)
    git("commit", "-qm", "add app", cwd=origin)
    sha = git("rev-parse", "HEAD", cwd=origin)
    feature, (wp,) = make_feature_with_wps(1)
    feature.project.repo_url = str(origin)
    feature.project.save()
    JobCommit.objects.create(job=job(wp), sha=sha, message="add app", files=["app.py"])

    page = browser.get("/jobs/job_1").content.decode()

    assert '<span class="add">+print(&#x27;hi&#x27;)</span>' in page and "app.py | 1 +" in page


def test_the_timeline_draws_a_bar_per_job_review_and_merge_batch_on_its_workers_row(browser):
    feature, (a, b) = make_feature_with_wps(2, chain=False)
    now = timezone.now()
    job(a, "job_a", state="succeeded", worker="w1", claimed_at=now - dt.timedelta(minutes=9),
        finished_at=now - dt.timedelta(minutes=5))
    job(b, "job_b", state="running", worker="w2", claimed_at=now - dt.timedelta(minutes=4))
    job(b, "job_q", state="queued")  # never claimed: no bar
    ReviewRequest.objects.create(feature=feature, wp=a, actor="human:x", state="done", worker="w1",
                                 started_at=now - dt.timedelta(minutes=4), finished_at=now - dt.timedelta(minutes=3))
    MergeQueueEntry.objects.create(repo="r", feature=feature, wp=a, state="merged", actor="human:x", batch="b1")

    page = browser.get("/farm/timeline").content.decode()

    assert 'data-rows="3" data-bars="4"' in page
    assert page.count('data-kind="job"') == 2 and 'data-kind="review"' in page and 'data-kind="merge"' in page
    assert 'href="/jobs/job_a"' in page and "outcome-running running" in page


def test_the_farm_page_shows_workers_parked_jobs_and_a_cost_chart(browser):
    feature, (wp,) = make_feature_with_wps(1)
    Worker.objects.create(hostname="w1", last_heartbeat=timezone.now(),
                          harnesses={"codex": {"available": True, "version": "0.1", "sandbox": "bwrap"}})
    job(wp, "job_p", state="queued", not_before=timezone.now() + dt.timedelta(minutes=30),
        usage={"cost_usd": "0.5"})
    job(WorkPackageFactory(feature=feature), "job_c", harness="claude-code", usage={"cost_usd": "1.5"})

    page = browser.get("/farm/").content.decode()

    assert 'data-worker="w1" data-alive="yes"' in page and "codex 0.1 · bwrap · model" in page
    assert "job_p</a>" in page and "parked until" in page
    assert 'data-bars="2"' in page


def test_a_running_job_offers_cancel_to_a_person_and_not_to_another_harness_agent():
    feature, (wp,) = make_feature_with_wps(1)
    job(wp, state="running", worker="w1")

    human = login("human").get("/jobs/job_1").content.decode()
    other = login("agent", agent="claude-code").get("/jobs/job_1").content.decode()

    assert 'data-name="cancel" data-url="/api/jobs/job_1/cancel"' in human
    assert 'class="action"' not in other


def test_a_blocked_node_says_what_stopped_it(browser):
    feature, (wp,) = make_feature_with_wps(1)
    job(wp, state="failed", worker="w1", current_activity="governance_violation")
    wp.state = "blocked"
    wp.save()

    page = browser.get(f"/features/{feature.slug}/dag").content.decode()

    assert 'data-lane="blocked"' in page and '<text class="note" x="8" y="41">✗ governance_violation</text>' in page
