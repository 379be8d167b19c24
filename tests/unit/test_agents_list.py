"""`agileplus agents list` shows each harness's CLI version (as workers report it) and the model
its CLI last reported running."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agileplus.dispatch.models import DispatchJob, Worker
from tests.factories import WorkPackageFactory
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


def finished_job(harness: str, model: str) -> DispatchJob:
    wp = WorkPackageFactory()
    return DispatchJob.objects.create(id=f"job_{harness}", feature=wp.feature, wp=wp, harness=harness,
                                      requested_by="human:alice", state="succeeded", finished_at=timezone.now(),
                                      result={"model": model})


def test_agents_list_shows_the_cli_version_and_the_model_it_last_ran(monkeypatch):
    monkeypatch.setattr("agileplus.cli.commands_agents.local_harnesses", lambda: {})
    Worker.objects.create(hostname="worker@w1", last_heartbeat=timezone.now(),
                          harnesses={"claude-code": {"available": True, "version": "2.1.328 (Claude Code)"}})
    finished_job("claude-code", "claude-opus-5-5")

    shown = run_cli("agents list").output.splitlines()

    start = next(i for i, line in enumerate(shown) if line.startswith("claude-code ("))
    block = shown[start:start + 4]
    assert block[2:4] == ["  Model: claude-opus-5-5", "  Version: 2.1.328 (Claude Code)"]


def test_agents_list_shows_the_agent_capabilities_uid_and_what_bounds_its_memory(monkeypatch):
    monkeypatch.delenv("AGILEPLUS_SANDBOX", raising=False)
    monkeypatch.delenv("AGILEPLUS_BWRAP", raising=False)

    shown = [line for line in run_cli("agents list").output.splitlines() if line.startswith("  This machine:")]

    assert shown and all(", capabilities none, uid 1000, memory per " in line for line in shown), shown
