"""What a worker announces about its sandbox (`agileplus agents list --json`): the mode, the
network policy and the names of the harness credentials it holds, never their values; and
"no sandbox, no agent" where namespaces cannot be made."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from agileplus.dispatch.models import DispatchJob, JobLogLine
from tests.support.farm import ROOT, import_target, job_env, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def agents_list(tmp_path, **env: str) -> list[dict]:
    environment = job_env(tmp_path / "cli", None, **env)
    for name in ("AGILEPLUS_SANDBOX", "AGILEPLUS_BWRAP", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        if name not in env:
            environment.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "agileplus", "agents", "list", "--json"], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "sk-ant-value-never-shown" not in done.stdout + done.stderr
    return json.loads(done.stdout)


def row(rows: list[dict], name: str) -> dict:
    return next(r for r in rows if r["name"] == name)


def test_agents_list_shows_sandbox_network_and_credential_names_without_values(tmp_path):
    rows = agents_list(tmp_path, ANTHROPIC_API_KEY="sk-ant-value-never-shown")

    claude = row(rows, "claude-code")["local"]
    assert claude["sandbox"] == "bwrap" and claude["network"] == "model"
    assert "ANTHROPIC_API_KEY" in claude["credentials"]["present"]
    assert "ANTHROPIC_BASE_URL" in claude["credentials"]["missing"]


def test_without_user_namespaces_the_worker_refuses_agent_harnesses_and_says_how_to_fix_it(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)

    command = row(agents_list(tmp_path, AGILEPLUS_BWRAP=str(fake)), "command")["local"]

    assert command["available"] is False and command["sandbox"] == "unavailable"
    assert "kernel.unprivileged_userns_clone" in command["reason"] and "AGILEPLUS_SANDBOX=off" in command["reason"]


def test_agileplus_sandbox_off_is_announced_as_off(tmp_path):
    command = row(agents_list(tmp_path, AGILEPLUS_SANDBOX="off"), "command")["local"]

    assert command["available"] is True and command["sandbox"] == "off"


def test_a_job_on_a_worker_without_namespaces_is_refused_before_the_agent_runs(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    marker = tmp_path / "agent-ran"
    repo = make_target_repo(tmp_path, wps={"WP01": []}, agent={"command": f"touch {marker}", "retries": 0})
    feature = import_target(repo)
    environment = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                          AGILEPLUS_BWRAP=str(fake))
    environment.pop("AGILEPLUS_SANDBOX", None)

    done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--inline"],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)

    assert "Traceback" not in done.stderr
    job = DispatchJob.objects.get(feature=feature)
    log = "\n".join(JobLogLine.objects.filter(job=job).values_list("line", flat=True))
    assert "Setup failed: no sandbox: bwrap cannot create namespaces" in log
    assert "kernel.unprivileged_userns_clone" in log
    assert not marker.exists()
