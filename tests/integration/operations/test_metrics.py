"""/metrics: the farm's figures in Prometheus' text format, read from the database, for a token
of a person, CI or an admin (or a listed scraper address), with bounded labels."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agileplus.api.services import create_api_token
from agileplus.dispatch.models import DispatchJob, ModelCall
from agileplus.events.models import Event
from agileplus.features.services import record_wp_entry
from tests.factories import make_feature_with_wps

pytestmark = [pytest.mark.django_db, pytest.mark.database]


@pytest.fixture(autouse=True)
def fresh_figures(settings):
    """Every scrape reads the database (no refresher thread, which would not see the test's transaction)."""
    settings.METRICS_REFRESH_SECONDS = 0


def scrape(client, token: str | None = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/metrics", **headers, **extra)


def samples(client) -> dict[tuple, float]:
    """{(sample name, sorted labels…): value} of one scrape with a CI token."""
    text = scrape(client, create_api_token("prometheus", "ci")).content.decode()
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def job(wp, harness: str, state: str, *, queued_ago: float, started_after: float | None = None,
        ran_for: float | None = None, usage: dict | None = None, number: int = 0) -> DispatchJob:
    now = timezone.now()
    queued = now - dt.timedelta(seconds=queued_ago)
    started = queued + dt.timedelta(seconds=started_after) if started_after is not None else None
    finished = started + dt.timedelta(seconds=ran_for) if ran_for is not None else None
    created = DispatchJob.objects.create(id=f"job-{wp.code}-{number}", feature=wp.feature, wp=wp, harness=harness,
                                         state=state, requested_by="human:alice", usage=usage or {})
    DispatchJob.objects.filter(pk=created.pk).update(queued_at=queued, started_at=started, finished_at=finished)
    return created


def test_a_scrape_without_a_token_is_refused_naming_the_header(client):
    answer = scrape(client)
    assert answer.status_code == 401 and answer.json()["error"]["field"] == "Authorization"


def test_an_agent_token_reads_no_metrics(client):
    assert scrape(client, create_api_token("bot", "agent", agent="codex")).status_code == 403


def test_a_token_guesser_is_throttled_like_at_every_door(client, settings):
    cache.clear()  # throttle histories live in the cache
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"write": "600/min", "auth": "2/min"}}
    try:
        answers = [scrape(client, "0" * 40).status_code for _ in range(3)]
    finally:
        cache.clear()
    assert answers == [401, 401, 429]


def test_a_listed_scraper_address_needs_no_token(client, settings):
    settings.METRICS_ALLOW_FROM = ["10.1.0.0/16"]
    assert scrape(client, REMOTE_ADDR="10.1.2.3").status_code == 200
    assert scrape(client, REMOTE_ADDR="10.2.0.1").status_code == 401


def test_jobs_are_counted_by_state_and_harness(client):
    _feature, (a, b, c) = make_feature_with_wps(3, chain=False)
    job(a, "codex", "running", queued_ago=60, started_after=5)
    job(b, "codex", "queued", queued_ago=10)
    job(c, "claude-code", "succeeded", queued_ago=600, started_after=2, ran_for=100)
    found = samples(client)
    assert found[("agileplus_jobs", ("harness", "codex"), ("state", "running"))] == 1
    assert found[("agileplus_jobs", ("harness", "claude-code"), ("state", "succeeded"))] == 1
    assert found[("agileplus_queue_depth", ("queue", "agents.codex"))] == 1
    assert found[("agileplus_jobs_active",)] == 2


def test_job_durations_are_histograms_of_the_stored_timestamps(client):
    _feature, wps = make_feature_with_wps(3, chain=False)
    for i, (wp, seconds) in enumerate(zip(wps, (20, 100, 5000), strict=True)):
        job(wp, "codex", "succeeded", queued_ago=9000, started_after=1.5, ran_for=seconds, number=i)
    found = samples(client)
    bucket = "agileplus_job_duration_seconds_bucket"
    assert found[(bucket, ("harness", "codex"), ("le", "30.0"))] == 1
    assert found[(bucket, ("harness", "codex"), ("le", "120.0"))] == 2
    assert found[(bucket, ("harness", "codex"), ("le", "+Inf"))] == 3
    assert found[("agileplus_job_duration_seconds_sum", ("harness", "codex"))] == pytest.approx(5120, abs=0.01)
    assert found[("agileplus_job_start_delay_seconds_bucket", ("harness", "codex"), ("le", "2.0"))] == 3


def test_gateway_tokens_and_cost_are_per_harness_model_and_account(client):
    _feature, (wp,) = make_feature_with_wps(1)
    billed = job(wp, "codex", "succeeded", queued_ago=60, started_after=1, ran_for=10)
    for tokens in (100, 250):
        ModelCall.objects.create(job=billed, feature=wp.feature, wp=wp, harness="codex", provider="openai",
                                 account="openai:abc", model="gpt-5", method="POST", path="/v1/responses",
                                 outcome="ok", input_tokens=tokens, output_tokens=10, cost_usd=Decimal("0.5"),
                                 started_at=timezone.now())
    found = samples(client)
    labels = (("account", "openai:abc"), ("harness", "codex"))
    assert found[("agileplus_model_tokens_total", *labels, ("kind", "input"), ("model", "gpt-5"))] == 350
    assert found[("agileplus_model_cost_usd_total", *labels, ("model", "gpt-5"))] == 1.0


def test_the_budget_left_is_the_feature_budget_minus_what_its_jobs_cost(client):
    feature, (wp,) = make_feature_with_wps(1, agent_config={"budget": {"feature_usd": 10}}, state="implementing")
    job(wp, "codex", "succeeded", queued_ago=60, started_after=1, ran_for=10, usage={"cost_usd": "2.5"})
    found = samples(client)
    assert found[("agileplus_budget_remaining_usd", ("budget", "feature_usd"), ("feature", feature.slug))] == 7.5


def test_sandbox_refusals_reaper_takeovers_and_the_audit_chain_are_counted(client):
    feature, (wp,) = make_feature_with_wps(1)
    Event.objects.bulk_create([Event(subject="agileplus.agent.job.j1.escape_refused", payload={}),
                               Event(subject="agileplus.agent.job.j1.network_refused", payload={}),
                               Event(subject="agileplus.agent.job.j2.network_refused", payload={})])
    record_wp_entry(wp, actor="system:reaper", transition=f"{wp.code}:attempt_lost", metadata={})
    found = samples(client)
    assert found[("agileplus_sandbox_refusals_total", ("kind", "network_refused"))] == 2
    assert found[("agileplus_sandbox_refusals_total", ("kind", "escape_refused"))] == 1
    assert found[("agileplus_reaper_takeovers_total",)] == 1
    assert found[("agileplus_audit_entries_total",)] == 1
    assert found[("agileplus_outbox_pending_events",)] == 3


def test_no_label_carries_a_job_or_wp_id(client):
    _feature, wps = make_feature_with_wps(3, chain=False)
    for i, wp in enumerate(wps):
        job(wp, "codex", "succeeded", queued_ago=60, started_after=1, ran_for=10, number=i)
    values = {value for key in samples(client) for _name, value in key[1:]}
    assert not [v for v in values if v.startswith("job-") or v.startswith("WP")]
