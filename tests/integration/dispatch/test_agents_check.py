"""`agileplus agents check` and the adapters' command lines against the pinned real CLIs: every
flag an adapter can pass is run through the real binary (not a list kept by hand), and a flag
the CLI rejects is reported as drift."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harnesses.check import check_harness, render, run_against_endpoint, scratch_worktree
from harnesses.endpoints import Say, Turn, Write, commit_script
from harnesses.endpoints.anthropic import AnthropicEndpoint
from tests.support.real_clis import require_cli
from tests.support.server import ROOT

pytestmark = pytest.mark.slow


def test_every_flag_the_claude_code_adapter_can_pass_is_accepted_by_the_pinned_cli(tmp_path):
    mcp = tmp_path / "mcp.json"
    mcp.write_text('{"mcpServers": {}}')

    result = check_harness("claude-code", binary=require_cli("claude-code"), model="claude-sonnet-4-5",
                           forbidden_paths=["secrets/", "config/prod.yaml"],
                           options={"max_turns": 8, "append_system_prompt": "Commit with the WP's prefix.",
                                    "mcp_config": str(mcp), "permission_mode": "acceptEdits",
                                    "allowed_tools": ["Bash(ls:*)"], "disallowed_tools": ["WebFetch"]})

    assert result.flags_accepted, result.problems + result.stderr[-5:]
    assert result.ok, result.problems


def test_every_flag_the_codex_adapter_can_pass_is_accepted_by_the_pinned_cli():
    result = check_harness("codex", binary=require_cli("codex"), model="gpt-5",
                           options={"config": {"model_reasoning_effort": "low"}, "skip_git_repo_check": True,
                                    "sandbox": "danger-full-access"})

    assert result.flags_accepted, result.problems + result.stderr[-5:]
    assert result.ok, result.problems


def test_every_flag_the_gemini_adapter_can_pass_is_accepted_by_the_pinned_cli(tmp_path):
    result = check_harness("gemini", binary=require_cli("gemini"), model="gemini-2.5-flash",
                           options={"approval_mode": "yolo", "include_directories": [str(tmp_path)]})

    assert result.flags_accepted, result.problems + result.stderr[-5:]
    assert result.ok, result.problems


def test_every_flag_the_opencode_adapter_can_pass_is_accepted_by_the_pinned_cli():
    result = check_harness("opencode", binary=require_cli("opencode"),
                           options={"agent": "build", "skip_permissions": True})

    assert result.flags_accepted, result.problems + result.stderr[-5:]
    assert result.ok, result.problems


def test_every_flag_the_aider_adapter_can_pass_is_accepted_by_the_pinned_cli(tmp_path):
    notes = tmp_path / "CONVENTIONS.md"
    notes.write_text("Commit with the WP's prefix.\n")

    result = check_harness("aider", binary=require_cli("aider"), model="openai/gpt-4o",
                           options={"edit_format": "whole", "files": ["README.md"], "read": [str(notes)]})

    assert result.flags_accepted, result.problems + result.stderr[-5:]
    assert result.ok, result.problems


def test_codex_accepts_the_workspace_write_command_line_with_the_git_dir_added():
    result = check_harness("codex", binary=require_cli("codex"), options={"sandbox": "workspace-write"})

    assert result.flags_accepted, result.problems + result.stderr[-5:]
    # its sandbox refuses the commit (Codex does not always print that failed command's item)
    assert "expected the commit 'feat(WP01): agents check', found none" in result.problems


@pytest.mark.parametrize("harness", ["claude-code", "codex", "gemini", "opencode", "aider"])
def test_a_flag_the_pinned_cli_rejects_is_reported_as_drift(harness):
    result = check_harness(harness, binary=require_cli(harness), options={"extra_args": ["--definitely-not-a-flag"]})

    assert result.flags_accepted is False
    assert not result.ok
    assert result.problems[0].startswith("the CLI did not accept the adapter's command line: ")
    if harness != "opencode":  # opencode prints its usage without naming the flag
        assert "definitely-not-a-flag" in result.problems[0]


def test_a_resumed_claude_code_session_sends_the_earlier_turns_to_the_model():
    with tempfile.TemporaryDirectory() as scratch:
        worktree = scratch_worktree(Path(scratch))
        binary = require_cli("claude-code")
        with AnthropicEndpoint(commit_script()) as first:
            _code, events, _out, _err = run_against_endpoint("claude-code", first, worktree, binary=binary)
        session = next(e.session_id for e in events if e.session_id)
        with AnthropicEndpoint([Turn([Say("Resumed.")])]) as second:
            code, events, _out, _err = run_against_endpoint("claude-code", second, worktree, binary=binary,
                                                            resume_session=session)

    assert code == 0
    assert next(e.session_id for e in events if e.session_id) == session
    sent = json.dumps(second.agent_requests[0].body["messages"])
    assert "hello from the scripted model" in sent and "git commit -q -m 'feat(WP01): add hello'" in sent


def test_agents_check_reports_the_pinned_clis_and_exits_zero():
    require_cli("claude-code")
    require_cli("codex")

    require_cli("gemini")

    done = subprocess.run([sys.executable, "-m", "agileplus", "agents", "check", "claude-code", "codex", "gemini",
                           "--pinned", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["harness"]: r for r in json.loads(done.stdout)}
    assert rows["claude-code"]["version"] == "2.1.328 (Claude Code)" and rows["claude-code"]["ok"]
    assert rows["codex"]["version"] == "codex-cli 0.169.0" and rows["codex"]["ok"]
    assert rows["gemini"]["version"] == "0.61.0" and rows["gemini"]["ok"]
    assert all(r["commits"] == 1 and r["session_id"] and r["usage"]["input_tokens"] for r in rows.values())


def test_a_plain_agents_check_runs_the_pinned_cli_where_path_has_none(tmp_path):
    pinned = require_cli("claude-code")
    tools = {str(Path(shutil.which(tool)).parent) for tool in ("git", "node")}  # what the CLI itself needs

    done = subprocess.run([sys.executable, "-m", "agileplus", "agents", "check", "claude-code", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": os.pathsep.join(sorted(tools)), "HOME": str(tmp_path),
                               "AGILEPLUS_DATA_DIR": str(tmp_path)})

    assert done.returncode == 0, done.stdout + done.stderr
    [row] = json.loads(done.stdout)
    assert (row["path"], row["ok"]) == (pinned, True)


def test_agents_check_exits_non_zero_when_a_named_cli_is_missing(tmp_path):
    # the variable names a binary that is not there: not on PATH, and the pinned copy is not used instead
    done = subprocess.run([sys.executable, "-m", "agileplus", "agents", "check", "aider"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": str(tmp_path), "HOME": str(tmp_path), "AGILEPLUS_DATA_DIR": str(tmp_path),
                               "AGILEPLUS_AIDER_BIN": str(tmp_path / "no-aider")})

    assert done.returncode == 1
    assert "aider: not found" in done.stdout


def test_claude_code_refuses_a_write_under_a_forbidden_path_from_the_adapter_s_deny_rules():
    with tempfile.TemporaryDirectory() as scratch:
        worktree = scratch_worktree(Path(scratch))
        with AnthropicEndpoint([Turn([Write("secrets/token.txt", "leak\n")])]) as endpoint:
            code, events, out, _err = run_against_endpoint("claude-code", endpoint, worktree,
                                                           binary=require_cli("claude-code"),
                                                           forbidden_paths=["secrets/"])
        written = (worktree / "secrets" / "token.txt").exists()

    assert code == 0
    assert not written
    assert any(e.kind == "tool_result" and e.is_error for e in events)
    assert json.loads(out[-1])["permission_denials"][0]["tool_name"] == "Write"


def test_a_cli_that_exits_0_without_asking_the_model_is_not_said_to_refuse_its_flags(tmp_path):
    quiet = tmp_path / "claude"
    quiet.write_text("#!/bin/sh\necho '2.1.328 (Claude Code)'\nexit 0\n")
    quiet.chmod(0o755)

    result = check_harness("claude-code", binary=str(quiet))
    screen = "\n".join(render([result]))

    assert "flags accepted" not in screen
    assert "the CLI exited 0 without calling the scripted model endpoint: 2.1.328 (Claude Code)" in screen
