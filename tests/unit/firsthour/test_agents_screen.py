"""`agents list` in the example's words, with the model each harness's workers actually run."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agileplus.dispatch.models import DispatchJob, Worker
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


def block_of(output: str, name: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name} ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return lines[start:end]


@pytest.fixture
def farm(monkeypatch, tmp_path):
    monkeypatch.setattr("harnesses.base.PINNED_DIR", tmp_path / "no-agent-clis")  # what workers announce, alone
    feature, (wp, _) = make_feature_with_wps(2)
    Worker.objects.create(hostname="worker@w1", harnesses={"claude-code": {"available": True}},
                          last_heartbeat=timezone.now(), started_at=timezone.now())
    return feature, wp


def test_a_harness_with_a_running_session_is_active_and_connected_with_the_model_its_cli_reported(farm):
    feature, wp = farm
    DispatchJob.objects.create(id="job_m1", feature=feature, wp=wp, harness="claude-code", state="running",
                               worker="worker@w1", started_at=timezone.now(),
                               usage={"model": "claude-opus-4-6"}, manifest={"model": "claude-sonnet-4-5"})

    block = block_of(run_cli("agents list").output, "claude-code")

    assert block[:3] == ["claude-code (active)", "  Status: connected", "  Model: claude-opus-4-6"]
    assert block[4:6] == ["  Sessions: 1 active", "    worker worker@w1: 1 active"]


def test_a_served_harness_without_sessions_shows_the_configured_model_of_its_last_run(farm):
    feature, wp = farm
    DispatchJob.objects.create(id="job_m2", feature=feature, wp=wp, harness="claude-code", state="succeeded",
                               started_at=timezone.now(), manifest={"model": "claude-sonnet-4-5"})

    block = block_of(run_cli("agents list").output, "claude-code")

    assert block[:3] == ["claude-code (available)", "  Status: connected", "  Model: claude-sonnet-4-5"]
