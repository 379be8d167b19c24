"""The sandbox's refusals and settings, with real processes: a bwrap that cannot create
namespaces is refused with the fix, AGILEPLUS_SANDBOX=off is the one way around it, and the
worker's harness credentials are read from its own environment and home."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from agileplus.core.secrets import harness_credentials, worker_secret_values
from harnesses.base import HarnessError
from harnesses.process import AgentProcess, StopReason
from harnesses.sandbox import (
    Limits,
    Sandbox,
    SandboxSpec,
    SandboxUnavailable,
    network_policy,
    runtime_paths,
    sandbox_mode,
)
from tests.support.farm import wait_until


@pytest.fixture
def no_namespaces(tmp_path, monkeypatch):
    """A bwrap that fails the way it does where unprivileged user namespaces are off."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace, likely because the kernel "
                    "does not allow non-privileged user namespaces.' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("AGILEPLUS_BWRAP", str(fake))
    monkeypatch.delenv("AGILEPLUS_SANDBOX", raising=False)
    return fake


def test_without_user_namespaces_agents_are_refused_with_the_reason_and_the_fix(no_namespaces):
    with pytest.raises(SandboxUnavailable) as refused:
        sandbox_mode()

    message = str(refused.value)
    assert "No permissions to create new namespace" in message
    assert "kernel.unprivileged_userns_clone" in message and "apparmor" in message
    assert "AGILEPLUS_SANDBOX=off" in message


def test_a_sandbox_that_keeps_capabilities_is_refused_saying_so(tmp_path, monkeypatch):
    # A bwrap that makes its namespaces but leaves root's capabilities inside (CapEff non-zero).
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\nprintf 'Name:\\tcat\\nUid:\\t0\\t0\\t0\\t0\\nCapEff:\\t000001fffeffffff\\n'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("AGILEPLUS_BWRAP", str(fake))
    monkeypatch.delenv("AGILEPLUS_SANDBOX", raising=False)

    with pytest.raises(SandboxUnavailable) as refused:
        sandbox_mode()

    assert "keeps capabilities (CapEff 000001fffeffffff, uid 0 inside)" in str(refused.value)
    assert "agents (untrusted code) are refused" in str(refused.value)


def test_agileplus_sandbox_off_runs_the_agent_unwrapped_on_purpose(no_namespaces, monkeypatch, tmp_path):
    monkeypatch.setenv("AGILEPLUS_SANDBOX", "off")

    sandbox = Sandbox(SandboxSpec(workdir=tmp_path))

    assert sandbox.mode == "off"
    assert sandbox.wrap(["echo", "hi"]) == ["echo", "hi"]


def test_a_sandboxed_command_sees_its_own_pid_namespace_and_no_host_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("AGILEPLUS_BWRAP", raising=False)
    monkeypatch.delenv("AGILEPLUS_SANDBOX", raising=False)
    hidden = tmp_path / "data"
    hidden.mkdir()
    (hidden / "db.sqlite3").write_text("secret")
    work = tmp_path / "data" / "work"
    work.mkdir()
    sandbox = Sandbox(SandboxSpec(workdir=work, hidden=[hidden]))

    out = subprocess.run(sandbox.wrap(["/bin/sh", "-c", f"echo $$; ls /proc | grep -c '^[0-9]'; "
                                       f"cat {hidden}/db.sqlite3 || echo unreadable; touch ok"]),
                         env=sandbox.environment({"PATH": "/usr/bin:/bin"}), capture_output=True, text=True,
                         preexec_fn=sandbox.preexec, timeout=30)

    first, processes, *rest = out.stdout.split()
    assert int(first) <= 3 and int(processes) <= 4  # its own PID namespace
    assert rest[-1] == "unreadable" and (work / "ok").exists()


def test_an_unknown_network_policy_is_refused_naming_the_choices():
    with pytest.raises(HarnessError, match="agent.network is 'internet': use one of model, none, open"):
        network_policy({"network": "internet"})


def test_harness_credentials_come_from_the_worker_environment_and_home_names_only_when_shown(tmp_path):
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / ".credentials.json").write_text('{"token": "oauth-secret-value"}')
    env = {"ANTHROPIC_API_KEY": "sk-ant-worker-key", "HOME": str(tmp_path),
           "AGILEPLUS_SECRET_DEPLOY": "deploy-secret"}

    creds = harness_credentials("claude-code", env, home=tmp_path)

    assert creds.env == {"ANTHROPIC_API_KEY": "sk-ant-worker-key"}
    assert creds.files == {"/tmp/home/.claude/.credentials.json": tmp_path / ".claude" / ".credentials.json"}
    assert "ANTHROPIC_API_KEY" in creds.present and "~/.claude/.credentials.json" in creds.present
    assert "ANTHROPIC_BASE_URL" in creds.missing
    assert {"sk-ant-worker-key", "deploy-secret", '{"token": "oauth-secret-value"}'} <= set(worker_secret_values(env))


def test_a_worker_names_its_own_credentials_per_harness(tmp_path):
    env = {"AGILEPLUS_HARNESS_CREDENTIALS_CODEX": "MY_OPENAI_KEY", "MY_OPENAI_KEY": "k-123",
           "OPENAI_API_KEY": "not-passed", "HOME": str(tmp_path)}

    creds = harness_credentials("codex", env, home=tmp_path)

    assert creds.env == {"MY_OPENAI_KEY": "k-123"}
    assert os.environ.get("MY_OPENAI_KEY") is None


def test_a_sandboxed_agent_gets_sigterm_and_its_grace_before_the_sandbox_ends(tmp_path, monkeypatch):
    monkeypatch.delenv("AGILEPLUS_BWRAP", raising=False)
    monkeypatch.delenv("AGILEPLUS_SANDBOX", raising=False)
    sandbox = Sandbox(SandboxSpec(workdir=tmp_path, read_only=runtime_paths()))
    script = "trap 'echo cleaning-up; exit 3' TERM; echo ready; while true; do sleep 0.1; done"
    proc = AgentProcess(["/bin/sh", "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout_seconds=60,
                        grace_seconds=10, sandbox=sandbox)
    lines: list[str] = []

    def on_line(_stream: str, text: str) -> StopReason | None:
        lines.append(text)
        return StopReason("cancelled", "test") if text == "ready" else None  # its trap is set by now

    result = proc.run(on_line)

    assert result.stopped.kind == "cancelled" and not result.killed
    assert "cleaning-up" in lines


def test_a_jobs_pids_cgroup_caps_its_processes_and_is_removed_after_the_job(
        tmp_path, monkeypatch):
    monkeypatch.delenv("AGILEPLUS_BWRAP", raising=False)
    monkeypatch.delenv("AGILEPLUS_SANDBOX", raising=False)
    sandbox = Sandbox(SandboxSpec(workdir=tmp_path, read_only=runtime_paths(), limits=Limits(processes=8))).open()
    if sandbox.cgroup is None:
        pytest.skip("this worker may not create a pids cgroup here (needs root and cgroup v1 pids): rlimits only")
    cgroup = sandbox.cgroup
    # 20 forks against a cap of 8: the ones over the cap fail; the children outlive the agent by
    # a moment, as a real agent's do while the namespace is torn down.
    script = ("import os, time\nforked = 0\nfor _ in range(20):\n    try:\n        pid = os.fork()\n"
              "    except OSError:\n        continue\n    if pid == 0:\n        time.sleep(0.3)\n        os._exit(0)\n"
              "    forked += 1\nprint(forked, flush=True)\n")
    proc = AgentProcess([sys.executable, "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                        timeout_seconds=30, sandbox=sandbox)
    lines: list[str] = []
    result = proc.run(lambda _stream, text: lines.append(text))
    sandbox.close()

    assert result.exit_code == 0 and int(lines[0]) < 8
    wait_until(lambda: not cgroup.exists(), timeout=10, what="the job's cgroup to be removed")
