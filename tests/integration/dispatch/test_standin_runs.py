"""`agileplus implement 003 --wp WP01 --agent <harness> --inline` with the stand-in agent CLIs on
PATH: the runner builds the real command line, the stand-in commits in the job's worktree, and
the job records the session, the tokens and the cost the adapter read from the stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agileplus.dispatch.models import DispatchJob
from tests.support.farm import ROOT, import_target, job_env, make_target_repo
from tests.support.standins import STANDINS, path_with_standins

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# What each stand-in reports (tests/standins/_<name>.py), as the adapter normalizes it.
EXPECTED = {
    "claude-code": {"input_tokens": 33572, "cached_input_tokens": 31250, "output_tokens": 640,
                    "cost_usd": "0.0421835", "turns": 4},
    "codex": {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 1222, "cost_usd": "0.01566975"},
    "gemini": {"input_tokens": 12800, "cached_input_tokens": 8000, "output_tokens": 1150, "cost_usd": "0.0185"},
    "aider": {"input_tokens": 12000, "cached_input_tokens": 8100, "output_tokens": 345, "cost_usd": "0.0123"},
    "opencode": {"input_tokens": 23450, "cached_input_tokens": 20000, "output_tokens": 370, "cost_usd": "0.0043"},
}
MODELS = {"codex": "gpt-5-codex", "gemini": "gemini-2.5-pro", "opencode": "anthropic/claude-sonnet-4-5"}


def implement_inline(tmp_path, harness: str) -> subprocess.CompletedProcess:
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"))
    env["PATH"] = path_with_standins(env.get("PATH"))
    return subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--agent", harness,
                           "--inline", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("harness", sorted(EXPECTED))
def test_a_wp_dispatched_to_a_stand_in_cli_succeeds_with_its_commit_tokens_and_cost(tmp_path, harness):
    agent = {"environment": {"STANDIN_FILE": "wp01/file_1.txt"}}
    if harness in MODELS:
        agent["model"] = MODELS[harness]
    repo = make_target_repo(tmp_path, agent=agent)
    feature = import_target(repo)

    done = implement_inline(tmp_path, harness)

    assert done.returncode == 0, done.stdout + done.stderr
    job = DispatchJob.objects.get(wp__code="WP01", feature=feature)
    assert job.state == "succeeded", json.dumps(job.error)
    assert job.harness == harness
    assert [c.message.splitlines()[0] for c in job.commits.all()] == ["feat(WP01): stand-in change"]
    assert job.result["files"] == ["wp01/file_1.txt"] and job.result["pushed"] is True
    assert {k: job.usage[k] for k in EXPECTED[harness]} == EXPECTED[harness]
    assert Path(job.manifest["argv"][0]).parent == STANDINS
    assert job.session_id and job.session_id != job.id  # Aider's is the adapter's (Aider names none)
    assert repo.has_branch("feat/003-auth-system-WP01")
