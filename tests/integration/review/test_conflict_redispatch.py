"""Auto mode: a WP whose branch conflicts with main (another WP merged first) goes back to its
agent with the conflict as context, and is blocked for a person after max_review_cycles."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from tests.support.farm import ROOT, import_target, job_env, make_target_repo, running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_conflicting_branch_is_sent_back_with_the_conflict_then_blocked(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []}, behaviour="sleep:1,write:shared.txt",
                            agent={"max_review_cycles": 2})
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))

    with running_workers(tmp_path, 2, broker_url=None):
        subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--all", "--wait", "--actor",
                        "human:alice"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)

    states = dict(feature.work_packages.values_list("code", "state"))
    merged, loser = ("WP01", "WP02") if states["WP01"] == "done" else ("WP02", "WP01")
    assert states == {merged: "done", loser: "blocked"}
    retry = DispatchJob.objects.filter(wp__code=loser, feature=feature).order_by("queued_at").last()
    assert "shared.txt" in retry.prompt and "Changes requested" in retry.prompt
    blocked = AuditEntry.objects.filter(feature=feature, wp__code=loser).order_by("-seq").first()
    assert blocked.metadata["reason"] == "review_cycles_exhausted"
    assert repo.git("show", "main:shared.txt") == f"{merged} wrote this"
    assert repo.git("status", "--porcelain") == ""
