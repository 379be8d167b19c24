"""The seed's steps 3–7 with real worker processes: `implement 003 --wp WP02` on the embedded
broker and on Redis, on whichever database this run uses (SQLite or PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.events.models import Event
from agileplus.features.services import transition_wp
from tests.support.farm import ROOT, import_target, job_env, make_target_repo, running_workers
from tests.support.services import require_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(params=["embedded", "redis"])
def broker(request, settings) -> str | None:
    if request.param == "redis":
        return require_service("redis").rsplit("/", 1)[0] + "/7"
    return None


def agileplus(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def finish_wp01(feature) -> None:
    wp01 = feature.work_packages.get(code="WP01")
    for state in ("doing", "for_review", "done"):
        transition_wp(wp01, state, actor="human:alice")


def test_wp02_dispatched_to_a_worker_reaches_for_review_with_its_commits(tmp_path, broker, settings):
    repo = make_target_repo(tmp_path, behaviour="commit:2")
    feature = import_target(repo)
    finish_wp01(feature)
    env = job_env(tmp_path / "cli", broker, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))

    with running_workers(tmp_path, 2, broker_url=broker):
        done = agileplus("implement", "003", "--wp", "WP02", "--agent", "command", "--wait", env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    wp02 = feature.work_packages.get(code="WP02")
    assert wp02.state == "for_review"
    job = DispatchJob.objects.get(wp=wp02)
    assert job.state == "succeeded" and job.attempt == 1
    branch_subjects = repo.subjects("feat/003-auth-system-WP02")[:2]
    assert [c.message.splitlines()[0] for c in job.commits.order_by("id")] == list(reversed(branch_subjects))
    assert branch_subjects == ["feat(WP02): change 2", "feat(WP02): change 1"]
    assert repo.subjects("main") == ["initial"]  # nothing merged before review


def test_the_audit_chain_and_events_follow_the_examples_flow(tmp_path, broker):
    repo = make_target_repo(tmp_path, behaviour="commit:2")
    feature = import_target(repo)
    finish_wp01(feature)
    first_event = Event.objects.order_by("-id").values_list("id", flat=True).first()
    env = job_env(tmp_path / "cli", broker, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))

    with running_workers(tmp_path, 1, broker_url=broker):
        agileplus("implement", "003", "--wp", "WP02", "--agent", "command", "--wait", env=env)

    job = DispatchJob.objects.get(wp__code="WP02", feature=feature)
    entries = AuditEntry.objects.filter(feature=feature, wp__code="WP02").order_by("seq")
    assert [(e.transition, e.actor) for e in entries] == [
        ("WP02:unblocked", "system:agileplus"),  # when WP01 reached done
        ("WP02:planned->doing", "agent:command"),
        ("WP02:doing->for_review", "agent:command"),
    ]
    assert verify_chain(feature).ok
    events = list(Event.objects.filter(id__gt=first_event).order_by("id"))
    wp = "agileplus.feature.003-auth-system.wp.WP02"
    assert [e.subject for e in events] == [
        f"{wp}.state.changed",
        f"agileplus.agent.job.{job.id}.started",
        f"agileplus.agent.job.{job.id}.commit",
        f"agileplus.agent.job.{job.id}.commit",
        f"agileplus.agent.job.{job.id}.completed",
        f"{wp}.state.changed",
    ]
    assert events[0].payload["from"] == "planned" and events[0].payload["to"] == "doing"
    assert events[0].payload["job_id"] == job.id
    assert events[1].payload["feature_slug"] == "003-auth-system" and events[1].payload["wp_id"] == "WP02"
    assert events[2].payload["message"] == "feat(WP02): change 1"
    assert events[4].payload["success"] is True and events[4].payload["commits"] == 2
