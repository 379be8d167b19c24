"""The demo's scripted agent on a takeover: the worker that lost the job had pushed part of the
WP's commits, and the next attempt continues that branch (harnesses/git.py create_worktree).
The agent must finish the WP from there, not fail on a step already committed (docker/smoke saw
that once: its worker kill landed after the first progress push, and the WP ended blocked)."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.support.server import ROOT

DEMO = ROOT / "examples" / "demo-farm"


def git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def run_agent(repo, prompt_file) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DEMO_AGENT_DELAY": "0", "AGILEPLUS_PROMPT_FILE": str(prompt_file),
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent)}
    return subprocess.run([sys.executable, "tools/demo_agent.py"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=60)


def test_a_takeover_on_a_branch_holding_the_first_commit_adds_only_the_missing_one(tmp_path):
    repo = tmp_path / "greeting-service"
    shutil.copytree(DEMO, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "skeleton")
    git(repo, "checkout", "-q", "-b", "feat/001-greeting-service-WP01")
    prompt = tmp_path / "prompt.md"
    prompt.write_text("# MISSION\nImplement WP01 of 001-greeting-service.\n", encoding="utf-8")
    first = run_agent(repo, prompt)
    assert first.returncode == 0, first.stdout + first.stderr
    git(repo, "reset", "-q", "--hard", "HEAD~1")  # the lost attempt had pushed only its first commit

    takeover = run_agent(repo, prompt)

    assert takeover.returncode == 0, takeover.stdout + takeover.stderr
    assert "Already committed by an earlier attempt: add the greet core with validation" in takeover.stdout
    assert git(repo, "log", "--format=%s", "main..HEAD").splitlines() == [
        "feat(WP01): add core greeting tests", "feat(WP01): add the greet core with validation"]
