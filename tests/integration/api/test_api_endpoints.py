"""What each endpoint does: the same services as the CLI, rendered as JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from agileplus.api.models import ApiRole
from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob, JobLogLine
from agileplus.events.models import Event
from agileplus.features.models import Project
from tests.factories import make_feature_with_wps
from tests.integration.api.conftest import add_job, client_for, move
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db(transaction=True)


# --- features and work packages ------------------------------------------------------------------
def test_projects_and_features_are_listed():
    feature, _ = make_feature_with_wps(2)
    client = client_for("human")

    projects = client.get("/api/projects").json()["results"]
    features = client.get("/api/features").json()["results"]

    assert [p["name"] for p in projects] == [Project.objects.get().name]
    assert [(f["slug"], f["totals"]["total"]) for f in features] == [(feature.slug, 2)]


def test_a_features_detail_is_its_status_with_readiness_and_cost():
    feature, _ = make_feature_with_wps(3, chain=True)
    move(feature, "WP01", "doing")

    body = client_for("human").get(f"/api/features/{feature.number}").json()

    assert body["feature"]["slug"] == feature.slug and body["cost_usd"] == "0"
    wps = {w["code"]: w for w in body["work_packages"]}
    assert wps["WP01"]["state"] == "doing"
    assert (wps["WP02"]["ready"], wps["WP02"]["blocked_by"]) == (False, ["WP01"])
    assert body["totals"] == {"done": 0, "total": 3, "percent": 0}


def test_wps_list_dependencies_and_readiness():
    feature, _ = make_feature_with_wps(2, chain=True)

    wps = client_for("human").get(f"/api/features/{feature.slug}/wps").json()["results"]

    assert [(w["code"], w["ready"], [d["code"] for d in w["dependencies"]]) for w in wps] == \
        [("WP01", True, []), ("WP02", False, ["WP01"])]


def test_a_wp_is_found_by_any_spelling_of_its_code(feature):
    client = client_for("human")
    assert {client.get(f"/api/features/{feature.slug}/wps/{code}").json()["code"] for code in
            ("WP02", "wp2", "2")} == {"WP02"}


# --- transitions -------------------------------------------------------------------------------
def test_a_transition_answers_the_new_state_and_its_audit_entry(feature):
    response = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition",
                                        {"to": "doing", "note": "starting by hand"}, format="json")

    body = response.json()
    assert response.status_code == 200
    assert (body["wp"], body["from"], body["to"], body["state"]) == ("WP01", "planned", "doing", "doing")
    entry = AuditEntry.objects.get(feature=feature, seq=body["audit_entry"])
    assert entry.transition == "WP01:planned->doing" and entry.metadata == {"note": "starting by hand"}


def test_the_cli_answers_a_transition_in_the_apis_shape(feature):
    api = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition", {"to": "doing"},
                                   format="json").json()
    cli = json.loads(run_cli(f"wp transition WP01 --to for_review --feature {feature.slug} --actor human:alice "
                             "--json").output)

    assert set(cli) == set(api)
    assert (cli["feature"], cli["wp"], cli["from"], cli["to"], cli["actor"]) == \
        (feature.slug, "WP01", "doing", "for_review", "human:alice")


def test_a_transition_with_the_current_expected_state_goes_through(feature):
    response = client_for("human").post(f"/api/features/{feature.slug}/wps/WP01/transition",
                                        {"to": "doing", "expected_state": "planned"}, format="json")
    assert response.status_code == 200


def test_finishing_a_wp_reports_the_dependents_it_unblocked():
    feature, _ = make_feature_with_wps(2, chain=True)
    move(feature, "WP01", "doing", "for_review")

    body = client_for("ci").post(f"/api/features/{feature.slug}/wps/WP01/move", {"to": "done"},
                                 format="json").json()

    assert (body["state"], body["actor"], body["unblocked"]) == ("done", "ci:ci-user", ["WP02"])


# --- implement -----------------------------------------------------------------------------------
def test_implement_queues_one_job_per_listed_wp(feature, no_doorbell):
    response = client_for("human").post(f"/api/features/{feature.slug}/implement",
                                        {"wps": ["WP01", "wp3"], "agent": "command"}, format="json")

    assert response.status_code == 202
    jobs = response.json()["jobs"]
    assert [(j["wp"], j["harness"], j["state"]) for j in jobs] == [("WP01", "command", "queued"),
                                                                   ("WP03", "command", "queued")]
    assert {j.requested_by for j in DispatchJob.objects.all()} == {"human:human-user"}
    assert sorted(j.id for j in no_doorbell) == sorted(j["id"] for j in jobs)


def test_implement_queues_all_listed_wps_or_none(no_doorbell):
    feature, _ = make_feature_with_wps(2, chain=True)

    response = client_for("human").post(f"/api/features/{feature.slug}/implement", {"wps": ["WP01", "WP02"]},
                                        format="json")

    assert response.status_code == 409 and response.json()["error"]["code"] == "blocked_by_dependency"
    assert DispatchJob.objects.count() == 0 and no_doorbell == []


def test_implement_all_queues_every_ready_wp(no_doorbell):
    feature, _ = make_feature_with_wps(3, chain=True)

    jobs = client_for("human").post(f"/api/features/{feature.slug}/implement", {"all": True},
                                    format="json").json()["jobs"]

    assert [j["wp"] for j in jobs] == ["WP01"]
    feature.refresh_from_db()
    assert feature.agent_config["auto_dispatch"] is True


def test_implement_needs_exactly_one_of_wps_wp_or_all(feature):
    response = client_for("human").post(f"/api/features/{feature.slug}/implement", {"wp": "WP01", "all": True},
                                        format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "wps"


# --- jobs ----------------------------------------------------------------------------------------
def jobs_with_ages(feature, count: int, **fields) -> list[DispatchJob]:
    now = timezone.now()
    made = []
    for i in range(count):
        job = add_job(feature, f"WP0{1 + i % 3}", job_id=f"job_{i:04d}", **fields)
        DispatchJob.objects.filter(pk=job.pk).update(queued_at=now - dt.timedelta(minutes=i // 2))  # ties in pairs
        made.append(job)
    return made


def test_jobs_are_filtered_by_status_feature_and_harness(feature):
    other, _ = make_feature_with_wps(1, number=77)
    add_job(feature, "WP01", harness="codex", state="running", job_id="job_a")
    add_job(feature, "WP02", harness="command", state="running", job_id="job_b")
    add_job(feature, "WP03", harness="codex", state="failed", job_id="job_c")
    add_job(other, "WP01", harness="codex", state="running", job_id="job_d")
    client = client_for("human")

    def ids(**params):
        return sorted(j["id"] for j in client.get("/api/jobs", params).json()["results"])

    assert ids(status="running", harness="codex") == ["job_a", "job_d"]
    assert ids(status="running", harness="codex", feature=feature.slug) == ["job_a"]
    assert ids(state="failed") == ["job_c"]


def test_jobs_page_newest_first_by_cursor_without_gaps_or_repeats(feature):
    jobs_with_ages(feature, 7)
    client = client_for("human")

    seen, url, pages = [], "/api/jobs?limit=3", 0
    while url:
        body = client.get(url).json()
        seen += [j["id"] for j in body["results"]]
        url, pages = body["next"], pages + 1

    assert pages == 3 and len(seen) == 7 and len(set(seen)) == 7
    queued = [DispatchJob.objects.get(pk=i).queued_at for i in seen]
    assert queued == sorted(queued, reverse=True)


def test_a_jobs_detail_has_its_commits_and_result(feature):
    add_job(feature, "WP01")
    body = client_for("human").get("/api/jobs/job_wp01_comma").json()
    assert (body["id"], body["wp"], body["state"], body["commits"]) == ("job_wp01_comma", "WP01", "running", [])


def test_a_jobs_log_is_paged_after_the_last_line_seen(feature):
    job = add_job(feature, "WP01")
    now = timezone.now()
    JobLogLine.objects.bulk_create(JobLogLine(job=job, seq=i, timestamp=now, line=f"line {i}") for i in range(1, 8))
    client = client_for("human")

    first = client.get(f"/api/jobs/{job.id}/log", {"limit": 5}).json()
    rest = client.get(f"/api/jobs/{job.id}/log", {"after": first["next_after"]}).json()
    idle = client.get(f"/api/jobs/{job.id}/log", {"after": rest["next_after"]}).json()

    assert [r["line"] for r in first["results"]] == [f"line {i}" for i in range(1, 6)]
    assert [r["line"] for r in rest["results"]] == ["line 6", "line 7"]
    assert (idle["results"], idle["next_after"]) == ([], 7)


def test_an_agent_reports_lines_on_its_own_job(feature):
    job = add_job(feature, "WP01", harness="claude-code")

    response = client_for("agent", agent="claude-code").post(f"/api/jobs/{job.id}/log",
                                                             {"lines": ["3 tests pass"]}, format="json")

    assert response.status_code == 201 and response.json()["added"] == 1
    assert JobLogLine.objects.get(job=job).line == "[agent:claude-code] 3 tests pass"


def test_cancelling_a_queued_job_ends_it_and_a_running_one_asks_its_worker(feature):
    add_job(feature, "WP01", state="queued", job_id="job_q")
    add_job(feature, "WP02", state="running", job_id="job_r")
    client = client_for("human")

    queued = client.post("/api/jobs/job_q/cancel", {}, format="json").json()
    running = client.post("/api/jobs/job_r/cancel", {}, format="json").json()

    assert (queued["state"], queued["cancel_requested"]) == ("cancelled", True)
    assert (running["state"], running["cancel_requested"]) == ("running", True)


# --- audit and events ----------------------------------------------------------------------------
def test_audit_entries_page_by_cursor_and_the_chain_verifies(feature):
    for _ in range(3):
        move(feature, "WP01", "doing", "blocked", "planned")  # 9 entries (+1 feature step)
    total = AuditEntry.objects.filter(feature=feature).count()
    client = client_for("human")

    seqs, url = [], f"/api/features/{feature.slug}/audit?limit=4"
    while url:
        body = client.get(url).json()
        seqs += [e["id"] for e in body["results"]]
        url = body["next"]
    verified = client.get(f"/api/features/{feature.slug}/audit/verify").json()

    assert seqs == list(range(1, total + 1))
    assert verified["ok"] is True and verified["entries"] == total == verify_chain(feature).count


def test_events_resume_after_the_last_id_seen(feature):
    move(feature, "WP01", "doing")
    client = client_for("human")
    first = client.get("/api/events").json()
    move(feature, "WP02", "doing")

    resumed = client.get("/api/events", {"after": first["next_after"]}).json()

    assert [e["subject"] for e in resumed["results"]] == [f"agileplus.feature.{feature.slug}.wp.WP02.state.changed"]
    assert resumed["next_after"] == Event.objects.latest("id").pk


def test_events_filter_by_feature_and_subject_pattern(feature):
    other, _ = make_feature_with_wps(1, number=78)
    move(feature, "WP01", "doing")
    move(other, "WP01", "doing")

    body = client_for("human").get("/api/events", {"feature": feature.slug,
                                                   "subject": "agileplus.feature.*.wp.*.state.changed"}).json()

    assert [e["payload"]["to"] for e in body["results"]] == ["doing"]


def test_agents_and_workers_are_listed():
    client = client_for("human")
    agents = client.get("/api/agents").json()["results"]
    assert "command" in {a["name"] for a in agents}
    assert client.get("/api/workers").json() == {"results": []}


# --- identities ----------------------------------------------------------------------------------
def test_an_admin_creates_a_token_that_acts_with_its_role(feature):
    made = client_for("admin").post("/api/tokens", {"username": "bot-7", "role": "agent", "agent": "codex"},
                                    format="json").json()
    add_job(feature, "WP01", harness="codex")
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Token {made['token']}")

    moved = bot.post(f"/api/features/{feature.slug}/wps/WP01/transition", {"to": "doing"}, format="json").json()

    assert moved["actor"] == "agent:codex"
    assert ApiRole.objects.get(user__username="bot-7").role == "agent"


def test_the_api_token_command_prints_a_working_key(capsys):
    call_command("api_token", "dana", "--role", "ci")
    key = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/features").status_code == 200
    assert ApiRole.objects.get(user__username="dana").role == "ci"


def test_a_person_exchanges_username_and_password_for_their_token(django_user_model):
    django_user_model.objects.create_user("frank", password="a-long-password")

    body = APIClient().post("/api/auth/token", {"username": "frank", "password": "a-long-password"},
                            format="json").json()
    wrong = APIClient().post("/api/auth/token", {"username": "frank", "password": "nope"}, format="json")

    assert (body["username"], body["role"], len(body["token"])) == ("frank", "human", 40)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "authentication_failed"


def test_the_schema_and_docs_are_served():
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "/api/features/{slug}/wps/{wp}/transition" in schema["paths"]
    assert APIClient().get("/api/docs/").status_code == 200
