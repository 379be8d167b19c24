"""Every documented response, for a real request on a farm with data in every table, is what
`/api/schema/` says: each required key present, each value of its type, and no key the schema
does not document (a client generated from the schema sees the whole response)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from agileplus.api.services import create_api_token
from agileplus.dispatch.models import DispatchJob, JobCommit, JobLogLine, Worker
from agileplus.review.models import MergeQueueEntry, ReviewReport, ReviewRequest
from agileplus.workflow.models import Candidate, CandidateRound
from tests.factories import make_feature_with_wps
from tests.integration.api.conftest import add_job, client_for, move
from tests.support.openapi import operation_for, response_errors

pytestmark = pytest.mark.django_db(transaction=True)

# Documented operations these tests do not request, and where their responses are checked instead.
NOT_REQUESTED_HERE: dict[tuple[str, str], str] = {}


@pytest.fixture
def spec(client):
    return client.get("/api/schema/?format=json").json()


@pytest.fixture
def busy_feature(no_doorbell):
    """WP01 doing with a finished job (commits, log, usage, review, merge queue entry), WP02
    planned behind it, WP03 with a queued job; a live worker."""
    feature, _ = make_feature_with_wps(3, chain=True, title="Busy feature")
    move(feature, "WP01", "doing")
    job = add_job(feature, "WP01", state="succeeded", job_id="job_wp01_done")
    now = timezone.now()
    DispatchJob.objects.filter(pk=job.pk).update(
        started_at=now - dt.timedelta(minutes=5), finished_at=now, exit_code=0, session_id="s-1",
        usage={"input_tokens": 1200, "output_tokens": 300, "cost_usd": "0.0125"}, result={"model": "m-1"},
        manifest={"hash": "abc123"}, worker="host-a")
    JobCommit.objects.create(job=job, sha="a" * 40, message="Add the thing", files=["src/thing.py"])
    JobLogLine.objects.bulk_create([JobLogLine(job=job, seq=i, timestamp=now, line=f"line {i}") for i in (1, 2)])
    ReviewReport.objects.create(feature=feature, wp=job.wp, job=job, actor="human:r", approved=False,
                                head_sha="a" * 40, checks=[{"name": "tests", "ok": False}], text="fix it")
    MergeQueueEntry.objects.create(repo=feature.project.repo_url, feature=feature, wp=job.wp, actor="human:r",
                                   head_sha="a" * 40, progress={"checks_done": 1, "passed": ["lint"]})
    add_job(feature, "WP03", state="queued", job_id="job_wp03_queued")
    ReviewRequest.objects.create(feature=feature, wp=job.wp, actor="human:r", state="done", worker="host-a",
                                 report=ReviewReport.objects.get(), started_at=now, finished_at=now)
    rnd = CandidateRound.objects.create(feature=feature, wp=job.wp, requested_by="human:r", state="chosen",
                                        winner=job, why="a smaller diff", decided_at=now)
    Candidate.objects.create(round=rnd, index=1, job=job, branch="feat/x-WP01-c1", harness="command", rank=1,
                             outcome="won", scored_at=now, score={
                                 "passed": True, "state": "succeeded", "reason": "", "deliverables": True,
                                 "checks": [{"name": "tests", "section": "Test Quality", "ok": True}],
                                 "tests_passed": 3, "tests_total": 3, "diff_lines": 12, "files": 2,
                                 "cost_usd": "0.0125"})
    Worker.objects.create(hostname="host-a", harnesses={"command": {"available": True, "version": "1"}},
                          concurrency=2, active_sessions=0, last_heartbeat=now)
    return feature


def reads(slug: str, review_request: int = 1) -> list[str]:
    return ["/api/projects", "/api/features", f"/api/features/{slug}", f"/api/features/{slug}/wps",
            f"/api/features/{slug}/wps/WP01", f"/api/features/{slug}/audit", f"/api/features/{slug}/audit/verify",
            f"/api/features/{slug}/costs", f"/api/features/{slug}/costs?by=wp", f"/api/features/{slug}/merge-queue",
            f"/api/features/{slug}/wps/WP01/reviews", f"/api/features/{slug}/wps/WP01/candidates",
            "/api/jobs", "/api/jobs?feature=" + slug,
            "/api/jobs/job_wp01_done", "/api/jobs/job_wp01_done/log", "/api/events", "/api/agents",
            "/api/workers", f"/api/review-requests/{review_request}"]


def writes(slug: str) -> list[tuple[str, dict]]:
    return [(f"/api/features/{slug}/wps/WP01/transition", {"to": "for_review", "note": "ready"}),
            (f"/api/features/{slug}/wps/WP01/review", {"apply": False}),
            (f"/api/features/{slug}/wps/WP01/move", {"to": "doing"}),
            (f"/api/features/{slug}/implement", {"wp": "WP01", "agent": "command"}),
            ("/api/jobs/job_wp03_queued/cancel", {}),
            ("/api/jobs/job_wp01_done/log", {"lines": ["a report line"]}),
            ("/api/tokens", {"username": "new-user", "role": "human"})]


def test_every_read_answers_what_the_schema_documents(spec, busy_feature):
    client = client_for("admin")
    problems = []
    for path in reads(busy_feature.slug, ReviewRequest.objects.get().pk):
        response = client.get(path)
        assert response.status_code == 200, (path, response.content)
        problems += response_errors(spec, "get", path, 200, response.json())
    assert problems == [], "\n".join(problems)


def test_every_write_answers_what_the_schema_documents(spec, busy_feature):
    client = client_for("admin")
    problems = []
    for path, body in writes(busy_feature.slug):
        response = client.post(path, body, format="json")
        assert response.status_code in (200, 201, 202), (path, response.content)
        problems += response_errors(spec, "post", path, response.status_code, response.json())
    assert problems == [], "\n".join(problems)


def test_a_login_answers_what_the_schema_documents(spec, busy_feature):
    create_api_token("person", "human")
    person = User.objects.get(username="person")
    person.set_password("correct horse")
    person.save()

    response = APIClient().post("/api/auth/token", {"username": "person", "password": "correct horse"},
                                format="json")

    assert response.status_code == 200, response.content
    assert response_errors(spec, "post", "/api/auth/token", 200, response.json()) == []


def test_every_documented_operation_is_requested_by_these_tests(spec):
    slug = "001-feature"
    requested = {("get", operation_for(spec, "get", path.split("?")[0])[0]) for path in reads(slug)}
    requested |= {("post", operation_for(spec, "post", path)[0]) for path, _body in writes(slug)}
    requested |= {("post", "/api/auth/token")}
    documented = {(method, template) for template, operations in spec["paths"].items()
                  for method in operations if method in ("get", "post", "put", "patch", "delete")}

    assert documented - requested - set(NOT_REQUESTED_HERE) == set()


def test_errors_answer_the_documented_error_shape(spec, busy_feature):
    client = client_for("human")
    slug = busy_feature.slug
    answers = [("get", f"/api/features/{slug}/wps/WP99", None), ("get", "/api/jobs?limit=0", None),
               ("post", f"/api/features/{slug}/wps/WP02/transition", {"to": "doing"}),
               ("post", "/api/tokens", {"username": "x", "role": "human"})]
    problems = []
    for method, path, body in answers:
        response = getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)
        assert response.status_code in (400, 403, 404, 409), (path, response.content)
        problems += response_errors(spec, method, path, response.status_code, response.json())
    assert problems == [], "\n".join(problems)
