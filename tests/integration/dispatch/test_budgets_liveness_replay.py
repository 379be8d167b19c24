"""Beyond the wall clock: budgets stop a run mid-stream, the idle watchdog kills a silent agent,
uncommitted work is salvaged, and `jobs replay` reproduces a run's manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from tests.support.cli import run_cli
from tests.support.farm import ROOT, import_target, job_env, make_target_repo, outbox_file, running_with, wait_until
from tests.support.standins import path_with_standins

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# The codex stand-in's per-turn usage (tests/standins/_codex.py USAGE), cumulative per turn.
TURN_TOKENS = {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 1222}
FLAT_PRICE = {"*": {"input": "1", "cached_input": "1", "output": "1"}}  # $1 per 1M tokens of any kind


def agileplus(tmp_path, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"), **(extra_env or {}))
    env["PATH"] = path_with_standins(env.get("PATH"))
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def cost_after(turns: int) -> Decimal:
    return Decimal(sum(TURN_TOKENS[k] for k in ("input_tokens", "output_tokens")) * turns) / Decimal(1_000_000)


def test_a_run_crossing_its_budget_is_stopped_at_that_event_and_the_ledger_matches(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, agent={
        "model": "gpt-5", "prices": FLAT_PRICE, "budget": {"job_usd": 0.06},
        "environment": {"STANDIN_TURNS": "8", "STANDIN_TURN_DELAY": "0.4", "STANDIN_FILE": "wp01/file_1.txt"}})
    feature = import_target(repo)

    result = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--agent", "codex", "--inline")

    assert result.returncode != 0
    job = DispatchJob.objects.get(feature=feature)
    assert job.state == "failed"
    assert Decimal(job.usage["cost_usd"]) == cost_after(3)  # turn 3 is the first above $0.06
    assert job.usage["input_tokens"] == TURN_TOKENS["input_tokens"] * 3
    entry = AuditEntry.objects.filter(feature=feature).order_by("-seq").first()
    assert entry.transition == "WP01:doing->blocked" and entry.metadata["reason"] == "budget_exceeded"
    ledger = json.loads(agileplus(tmp_path, "costs", "003", "--by", "wp", "--json").stdout)
    assert ledger["rows"][0]["cost_usd"] == str(cost_after(3))
    assert ledger["rows"][0]["output_tokens"] == TURN_TOKENS["output_tokens"] * 3


def test_a_bad_budget_is_refused_before_dispatch_naming_the_key(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, agent={"budget": {"job_usd": "lots"}})
    feature = import_target(repo)

    result = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline")

    assert result.returncode != 0
    assert "agent.budget.job_usd" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not DispatchJob.objects.filter(feature=feature).exists()


def test_a_silent_agent_is_killed_by_the_idle_watchdog_before_the_timeout(tmp_path):
    pid_file = outbox_file(tmp_path, "grandchild.pid")
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="stubborn",
                            environment={"GRANDCHILD_PID_FILE": str(pid_file)},
                            agent={"idle_timeout_seconds": 2, "timeout_seconds": 120})
    feature = import_target(repo)

    result = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline",
                       extra_env={"grace": "1"})

    assert result.returncode != 0
    job = DispatchJob.objects.get(feature=feature)
    assert (job.finished_at - job.started_at).total_seconds() < 15
    entry = AuditEntry.objects.filter(feature=feature).order_by("-seq").first()
    assert entry.metadata["reason"] == "agent_idle"
    assert pid_file.exists()  # the grandchild started
    wait_until(lambda: not running_with(str(pid_file)), timeout=5, what="the grandchild to die")


def test_uncommitted_work_of_a_timed_out_agent_is_salvaged_to_a_ref(tmp_path):
    # The agent leaves a file uncommitted, then hangs until the timeout.
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:1,wip:wip.txt,stubborn",
                            environment={"GRANDCHILD_PID_FILE": str(outbox_file(tmp_path, "pid"))})
    feature = import_target(repo)
    result = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline", "--timeout", "3",
                       extra_env={"grace": "1"})

    job = DispatchJob.objects.get(feature=feature)
    assert job.state == "timed_out", result.stdout
    ref = f"refs/agileplus/salvage/{job.id}"
    assert job.result["salvage_ref"] == ref
    assert "wip.txt" in repo.git("ls-tree", "-r", "--name-only", ref)
    shown = agileplus(tmp_path, "jobs", "show", job.id)
    assert f"Salvaged work: {ref}" in shown.stdout


def test_jobs_replay_reproduces_the_manifest_hash(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="fail:1")
    feature = import_target(repo)
    first = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline")
    assert first.returncode != 0
    original = DispatchJob.objects.get(feature=feature)
    assert run_cli("wp transition WP01 --feature 003 --to planned --actor human:alice").exit_code == 0
    repo.git("commit", "--allow-empty", "-qm", "main moved on")  # a replay still uses the original base

    replay = agileplus(tmp_path, "jobs", "replay", original.id, "--inline")

    again = DispatchJob.objects.exclude(pk=original.pk).get(feature=feature)
    assert again.result["replay_of"] == original.id, replay.stdout + replay.stderr
    assert again.manifest["hash"] == original.manifest["hash"]
    assert again.prompt == original.prompt and again.base_commit == original.base_commit
    doing = AuditEntry.objects.filter(feature=feature, transition="WP01:planned->doing").order_by("seq")
    assert [e.metadata["manifest_hash"] for e in doing] == [original.manifest["hash"]] * 2


def test_a_rate_limited_backend_hands_the_wp_to_the_next_configured_harness(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:1", agent={
        "harness": "codex", "model": "gpt-5", "fallback_harnesses": ["command"],
        "environment": {"STANDIN_RATE_LIMIT": "1"}})
    feature = import_target(repo)

    agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline")
    rerouted = DispatchJob.objects.get(feature=feature, harness="command")

    limited = DispatchJob.objects.get(feature=feature, harness="codex")
    assert limited.state == "failed" and "429" in limited.error
    transitions = [e.transition for e in AuditEntry.objects.filter(feature=feature, wp__code="WP01").order_by("seq")]
    assert transitions[-2:] == ["WP01:doing->blocked", "WP01:blocked->planned"]
    assert rerouted.state == "queued" and rerouted.requested_by == "system:router"
