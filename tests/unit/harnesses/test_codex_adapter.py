"""The codex adapter runs `codex exec --json … -` with the prompt on stdin and a sandbox that
can commit in a worktree, reads its JSONL events, and prices the tokens Codex reports."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from harnesses.adapters.codex import CodexAdapter, git_dirs
from harnesses.base import HarnessError, RunSpec
from tests.support.standins import git, run_adapter, run_spec, value_after
from tests.support.streams import recorded

STREAM = recorded("codex")  # Codex 0.169.0 against the scripted endpoint (scripts/record-agent-streams)
THREAD = STREAM.of_type("thread.started")[0]
MESSAGE = STREAM.of_type("item.completed")[-1]  # the closing agent_message
COMPLETED = STREAM.of_type("turn.completed")[0]  # 3 calls of 1000 input / 100 output tokens
# Shapes the scripted endpoint cannot make Codex print (its reasoning, a patch, a failed turn
# after its own retries, a reconnect notice), written from Codex's documented events.
REASONING = '{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Scanning the form code**"}}'
COMMAND_STARTED = ('{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":'
                   '"bash -lc \'git commit -am login\'","aggregated_output":"","exit_code":null,'
                   '"status":"in_progress"}}')
COMMAND_FAILED = ('{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":'
                  '"bash -lc \'git commit -am login\'","aggregated_output":"fatal: Unable to create '
                  '\'/m/.git/index.lock\': Operation not permitted\\n","exit_code":128,"status":"failed"}}')
FILE_CHANGE = ('{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":'
               '[{"path":"src/login.py","kind":"add"},{"path":"README.md","kind":"update"}],"status":"completed"}}')
FAILED = '{"type":"turn.failed","error":{"message":"model response stream ended unexpectedly"}}'
RECONNECTING = '{"type":"error","message":"Reconnecting... 1/5 (stream disconnected before completion)"}'


def argv_of(workdir, **kwargs) -> list[str]:
    return CodexAdapter().build_command(run_spec(workdir, **kwargs)).argv


def worktree_of(repo, tmp_path):
    """A linked worktree of ``repo`` (as the runner makes): its git dir is outside it."""
    path = tmp_path / "worktrees" / "wp01"
    git(repo, "worktree", "add", "-q", "-b", "feat/WP01", str(path))
    return path


# --- the command -------------------------------------------------------------------------


def test_runs_exec_with_json_events_and_the_prompt_on_stdin(standins, tmp_path):
    invocation = CodexAdapter().build_command(run_spec(tmp_path, prompt="Implement WP01"))

    assert invocation.argv[:3] == [str(standins / "codex"), "exec", "--json"]
    assert invocation.argv[-1] == "-"
    assert invocation.stdin_text == "Implement WP01"
    assert value_after(invocation.argv, "-C") == str(tmp_path)


def test_codex_s_own_sandbox_is_off_by_default_the_farm_s_sandbox_confines_it(standins, tmp_path):
    assert value_after(argv_of(tmp_path), "--sandbox") == "danger-full-access"


def test_a_worker_s_openai_base_url_becomes_the_model_provider(standins, tmp_path):
    spec = RunSpec(prompt="Implement WP01", workdir=tmp_path, env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})

    argv = CodexAdapter().build_command(spec).argv

    assert "model_provider=agileplus" in argv
    assert "model_providers.agileplus.base_url=http://127.0.0.1:9/v1" in argv
    assert "model_providers.agileplus.wire_api=responses" in argv


def test_under_workspace_write_a_worktrees_git_dir_is_added(standins, repo, tmp_path):
    worktree = worktree_of(repo, tmp_path)

    argv = argv_of(worktree, options={"sandbox": "workspace-write"})

    assert value_after(argv, "--add-dir") == str((repo / ".git").resolve())
    assert git_dirs(repo) == [str((repo / ".git").resolve())]


def test_a_bypassed_sandbox_adds_no_directories(standins, repo):
    argv = argv_of(repo, options={"bypass_sandbox": True})

    assert "--dangerously-bypass-approvals-and-sandbox" in argv
    assert "--sandbox" not in argv and "--add-dir" not in argv


def test_an_unknown_sandbox_is_a_harness_error(standins, tmp_path):
    with pytest.raises(HarnessError, match="sandbox must be one of"):
        argv_of(tmp_path, options={"sandbox": "none"})


def test_model_config_overrides_and_the_session_to_resume_are_passed(standins, tmp_path):
    argv = argv_of(tmp_path, model="gpt-5-codex", options={"config": {"model_reasoning_effort": "high"}},
                   resume_session="0199a213")

    assert value_after(argv, "-m") == "gpt-5-codex"
    assert value_after(argv, "-c") == "model_reasoning_effort=high"
    assert argv[-3:] == ["resume", "0199a213", "-"]


# --- the stream --------------------------------------------------------------------------


def test_thread_started_gives_the_session():
    [event] = CodexAdapter().parse_line(THREAD)

    assert (event.kind, event.session_id) == ("init", json.loads(THREAD)["thread_id"])


def test_items_become_messages_tool_uses_and_tool_results():
    adapter = CodexAdapter()
    events = [e for line in (REASONING, COMMAND_STARTED, COMMAND_FAILED, FILE_CHANGE, MESSAGE)
              for e in adapter.parse_line(line)]

    assert [(e.kind, e.text) for e in events] == [
        ("message", "thinking: **Scanning the form code**"),
        ("tool_use", "$ bash -lc 'git commit -am login'"),
        ("tool_result", "exit 128: fatal: Unable to create '/m/.git/index.lock': Operation not permitted"),
        ("tool_result", "patched: add src/login.py, update README.md"),
        ("message", "Done: the work is committed."),
    ]
    assert [e.is_error for e in events] == [False, False, True, False, False]


def test_turn_completed_is_the_final_result_with_tokens_and_a_cost_from_the_price_table(standins, tmp_path):
    adapter = CodexAdapter()
    adapter.build_command(run_spec(tmp_path, model="gpt-5-codex"))
    adapter.parse_line(MESSAGE)

    [event] = adapter.parse_line(COMPLETED)

    assert (event.kind, event.final, event.is_error) == ("result", True, False)
    assert event.text == "Done: the work is committed."
    assert (event.usage.input_tokens, event.usage.cached_input_tokens, event.usage.output_tokens) == (3000, 0, 300)
    # 3000 input × $1.25 + 300 output × $10, per million tokens
    assert event.usage.cost_usd == Decimal("0.00675")


def test_prices_from_the_agent_config_replace_the_defaults(standins, tmp_path):
    adapter = CodexAdapter()
    adapter.build_command(run_spec(tmp_path, model="my-model", options={"prices": {"my": {"input": 2, "output": 8}}}))

    [event] = adapter.parse_line(COMPLETED)

    assert event.usage.cost_usd == Decimal("0.0084")  # 3000 × $2 + 300 × $8 per million


def test_without_a_known_model_the_cost_stays_unknown():
    [event] = CodexAdapter().parse_line(COMPLETED)

    assert event.usage.cost_usd is None
    assert event.usage.output_tokens == 300


def test_a_failed_turn_is_a_final_error_and_a_stream_error_is_not_final():
    adapter = CodexAdapter()
    [reconnect] = adapter.parse_line(RECONNECTING)
    [failed] = adapter.parse_line(FAILED)

    assert (reconnect.kind, reconnect.is_error, reconnect.final) == ("error", True, False)
    assert (failed.kind, failed.is_error, failed.final) == ("result", True, True)
    assert failed.text == "turn failed: model response stream ended unexpectedly"


# --- a run of the stand-in CLI: only what the real CLI cannot be made to do (a malformed line) ---


def test_a_malformed_line_mid_stream_is_logged_and_the_rest_still_parses(standins, repo):
    run = run_adapter(CodexAdapter(), run_spec(repo), env={"STANDIN_MALFORMED": "1"})

    [log] = run.of("log")
    assert log.text.startswith('{"type": "malformed"')
    assert run.final.usage.output_tokens == 1222
