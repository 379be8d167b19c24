"""The claude-code adapter runs `claude -p --output-format stream-json --verbose` with the prompt
on stdin, and reads its stream: system/init, assistant and user messages, the final result."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from harnesses.adapters.claude_code import ClaudeCodeAdapter
from harnesses.base import HarnessError
from tests.support.standins import run_adapter, run_spec, value_after
from tests.support.streams import recorded


def argv_of(tmp_path, **kwargs) -> list[str]:
    return ClaudeCodeAdapter().build_command(run_spec(tmp_path, **kwargs)).argv


# --- the command -------------------------------------------------------------------------


def test_runs_print_mode_streaming_json_with_the_prompt_on_stdin(standins, tmp_path):
    invocation = ClaudeCodeAdapter().build_command(run_spec(tmp_path, prompt="Implement WP01"))

    assert invocation.argv[0] == str(standins / "claude")
    assert invocation.argv[1:5] == ["-p", "--output-format", "stream-json", "--verbose"]
    assert invocation.stdin_text == "Implement WP01"
    assert "Implement WP01" not in invocation.argv


def test_permission_mode_defaults_to_accept_edits(standins, tmp_path):
    assert value_after(argv_of(tmp_path), "--permission-mode") == "acceptEdits"


def test_permission_mode_comes_from_the_agent_config(standins, tmp_path):
    argv = argv_of(tmp_path, options={"permission_mode": "bypassPermissions"})

    assert value_after(argv, "--permission-mode") == "bypassPermissions"


def test_the_model_is_passed_only_when_configured(standins, tmp_path):
    assert value_after(argv_of(tmp_path, model="opus"), "--model") == "opus"
    assert "--model" not in argv_of(tmp_path)


def test_git_commit_is_allowed_by_default_and_configured_tools_are_added(standins, tmp_path):
    argv = argv_of(tmp_path, options={"allowed_tools": ["Bash(pytest:*)"], "disallowed_tools": "WebFetch"})

    allowed = value_after(argv, "--allowedTools").split(",")
    assert "Bash(git commit:*)" in allowed and "Bash(git add:*)" in allowed
    assert allowed[-1] == "Bash(pytest:*)"
    assert value_after(argv, "--disallowedTools") == "WebFetch"


def test_forbidden_paths_become_edit_deny_rules(standins, tmp_path):
    argv = argv_of(tmp_path, forbidden_paths=["secrets/", "./config/prod.yaml"])

    assert value_after(argv, "--disallowedTools").split(",") == [
        "Edit(./secrets/**)", "Edit(./config/prod.yaml)", "Edit(./config/prod.yaml/**)"]


def test_max_turns_and_the_session_to_resume_are_passed(standins, tmp_path):
    argv = argv_of(tmp_path, options={"max_turns": 30}, resume_session="9f6c7a3e")

    assert value_after(argv, "--max-turns") == "30"
    assert value_after(argv, "--resume") == "9f6c7a3e"


def test_a_max_turns_that_is_not_a_number_is_a_harness_error(standins, tmp_path):
    with pytest.raises(HarnessError, match="max_turns must be a whole number"):
        argv_of(tmp_path, options={"max_turns": "many"})


# --- the stream --------------------------------------------------------------------------


def test_the_init_line_gives_the_session_and_the_model():
    stream = recorded("claude-code")
    [init] = stream.of_type("system", subtype="init")

    [event] = ClaudeCodeAdapter().parse_line(init)

    assert event.kind == "init"
    assert event.session_id == json.loads(init)["session_id"]
    assert event.model == json.loads(init)["model"]


def test_assistant_text_is_a_message_and_a_tool_call_is_a_tool_use_with_a_running_usage():
    adapter = ClaudeCodeAdapter()
    events = [e for line in recorded("claude-code").of_type("assistant") for e in adapter.parse_line(line)]

    told = [(e.kind, e.text) for e in events if e.kind != "usage"]
    assert told[1][1].startswith("Write: /") and told[1][1].endswith("/agents-check.txt")
    assert told[:1] + told[2:] == [
        ("message", "Writing the file."),
        ("tool_use", "Bash: git add agents-check.txt && git commit -q -m 'feat(WP01): agents check'"),
        ("message", "Done: the work is committed."),
    ]
    # one usage per API call (message id), not per content block: 3 calls of 1000 input tokens
    assert [e.usage.input_tokens for e in events if e.kind == "usage"] == [1000, 2000, 3000]


def test_a_tool_result_is_reported_whole():
    [write, commit] = [e for line in recorded("claude-code").of_type("user")
                       for e in ClaudeCodeAdapter().parse_line(line)]

    assert (write.kind, write.is_error) == ("tool_result", False)
    assert write.text.startswith("File created successfully at: ")
    assert (commit.kind, commit.is_error) == ("tool_result", False)


def test_the_result_is_final_with_the_cli_s_own_tokens_cost_and_turns():
    [line] = recorded("claude-code").of_type("result")
    raw = json.loads(line)

    [event] = ClaudeCodeAdapter().parse_line(line)

    assert (event.kind, event.final, event.is_error) == ("result", True, False)
    assert event.text == "Done: the work is committed."
    assert event.session_id == raw["session_id"]
    assert event.usage.cost_usd == Decimal(str(raw["total_cost_usd"]))
    assert event.usage.turns == raw["num_turns"]
    assert event.usage.input_tokens == 3000 and event.usage.output_tokens == 300


def test_a_result_that_hit_the_turn_limit_is_an_error():
    [line] = recorded("claude-code", "max-turns").of_type("result")

    [event] = ClaudeCodeAdapter().parse_line(line)

    assert event.final and event.is_error
    assert event.text.startswith("error_max_turns")
    assert event.usage.cost_usd == Decimal(str(json.loads(line)["total_cost_usd"]))


def test_blank_lines_give_no_events():
    assert ClaudeCodeAdapter().parse_line("   ") == []


# --- a run of the stand-in CLI: only what the real CLI cannot be made to do (a malformed line) ---


def test_a_malformed_line_mid_stream_is_logged_and_the_rest_still_parses(standins, repo):
    run = run_adapter(ClaudeCodeAdapter(), run_spec(repo), env={"STANDIN_MALFORMED": "1"})

    [log] = run.of("log")
    assert log.text.startswith('{"type": "malformed"')
    assert run.final.usage.cost_usd == Decimal("0.0421835")
