"""The aider adapter runs `aider --yes-always --no-pretty --no-stream --auto-commits … --message-file F`;
Aider prints no JSON, so each line is a log event except its token/cost reports and commits."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal

import pytest

from harnesses.adapters.aider import AiderAdapter, count
from harnesses.adapters.command import PROMPT_FILE_ENV
from harnesses.base import HarnessError
from tests.support.standins import run_adapter, run_spec, value_after
from tests.support.streams import recorded


def prompt_file(tmp_path, text="Implement WP01: add the login form.") -> str:
    path = tmp_path / "prompt.md"
    path.write_text(text)
    return str(path)


# --- the command -------------------------------------------------------------------------


def test_runs_one_message_from_the_prompt_file_saying_yes_and_committing(standins, tmp_path):
    invocation = AiderAdapter().build_command(run_spec(tmp_path, env={PROMPT_FILE_ENV: prompt_file(tmp_path)}))

    assert invocation.argv[0] == str(standins / "aider")
    assert {"--yes-always", "--no-pretty", "--no-stream", "--auto-commits"} <= set(invocation.argv)
    assert value_after(invocation.argv, "--message-file") == str(tmp_path / "prompt.md")
    assert invocation.stdin_text is None


def test_without_a_prompt_file_the_prompt_is_the_message(standins, tmp_path):
    argv = AiderAdapter().build_command(run_spec(tmp_path, prompt="Implement WP01")).argv

    assert value_after(argv, "--message") == "Implement WP01"


SESSION_DIR = "/tmp/home/.aider-sessions"  # where the runner binds the session folder under the sandbox


def test_without_a_session_folder_aider_keeps_no_history_and_names_no_session(standins, tmp_path):
    adapter = AiderAdapter()
    argv = adapter.build_command(run_spec(tmp_path)).argv

    assert value_after(argv, "--chat-history-file") == os.devnull
    assert value_after(argv, "--input-history-file") == os.devnull
    assert "--restore-chat-history" not in argv
    assert [e.kind for e in adapter.parse_line("Aider v0.86.2")] == ["log"]


def test_a_fresh_run_writes_its_chat_history_to_a_new_session_s_file_in_the_session_folder(standins, tmp_path):
    adapter = AiderAdapter()
    argv = adapter.build_command(run_spec(tmp_path, session_dir=SESSION_DIR)).argv

    session = str(uuid.UUID(adapter.session))
    assert value_after(argv, "--chat-history-file") == f"{SESSION_DIR}/{session}.chat.history.md"
    assert "--restore-chat-history" not in argv
    assert value_after(argv, "--input-history-file") == os.devnull  # typed input: there is none
    assert "--no-gitignore" in argv  # nothing of Aider's in the worktree or its .gitignore


def test_each_fresh_run_is_a_new_session(standins, tmp_path):
    first, second = AiderAdapter(), AiderAdapter()
    first.build_command(run_spec(tmp_path, session_dir=SESSION_DIR))
    second.build_command(run_spec(tmp_path, session_dir=SESSION_DIR))

    assert first.session != second.session


def test_a_resumed_run_restores_the_session_s_chat_history_and_keeps_writing_it(standins, tmp_path):
    adapter = AiderAdapter()
    argv = adapter.build_command(run_spec(tmp_path, session_dir=SESSION_DIR, resume_session="S-1")).argv

    assert value_after(argv, "--chat-history-file") == f"{SESSION_DIR}/S-1.chat.history.md"
    assert "--restore-chat-history" in argv
    assert adapter.session == "S-1"


@pytest.mark.parametrize("session", ["../../etc/passwd", "a/b", "..", "S 1"])
def test_a_session_id_that_is_not_a_plain_name_is_refused(standins, tmp_path, session):
    spec = run_spec(tmp_path, session_dir=SESSION_DIR, resume_session=session)

    with pytest.raises(HarnessError, match="not an aider session id"):
        AiderAdapter().build_command(spec)


def test_the_model_is_passed_only_when_configured(standins, tmp_path):
    assert value_after(AiderAdapter().build_command(run_spec(tmp_path, model="sonnet")).argv, "--model") == "sonnet"
    assert "--model" not in AiderAdapter().build_command(run_spec(tmp_path)).argv


# --- the output --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "tokens"), [("345", 345), ("1.2k", 1200), ("12k", 12000), ("1,234", 1234),
                                              ("1.5M", 1_500_000)])
def test_token_counts_are_read_as_aider_rounds_them(text, tokens):
    assert count(text) == tokens


def test_a_token_report_with_its_cost_is_a_usage_event():
    line = "Tokens: 2.6k sent, 345 received. Cost: $0.01 message, $0.05 session."

    [event] = AiderAdapter().parse_line(line)

    assert (event.kind, event.text) == ("usage", line)
    assert (event.usage.input_tokens, event.usage.output_tokens) == (2600, 345)
    assert event.usage.cost_usd == Decimal("0.05")  # the session's cost so far


def test_cache_hits_are_the_cached_part_and_a_cost_on_the_next_line_is_read_too():
    adapter = AiderAdapter()

    [tokens] = adapter.parse_line("Tokens: 12k sent, 2.5k cache write, 8.1k cache hit, 345 received.")
    [cost] = adapter.parse_line("Cost: $0.0123 message, $0.0123 session.")

    assert (tokens.usage.input_tokens, tokens.usage.cached_input_tokens) == (12000, 8100)
    assert tokens.usage.cost_usd is None
    assert cost.usage.cost_usd == Decimal("0.0123") and cost.usage.input_tokens == 12000


def test_token_reports_add_up_over_the_run():
    adapter = AiderAdapter()
    adapter.parse_line("Tokens: 2.6k sent, 345 received. Cost: $0.01 message, $0.01 session.")

    [event] = adapter.parse_line("Tokens: 3.1k sent, 120 received. Cost: $0.02 message, $0.03 session.")

    assert (event.usage.input_tokens, event.usage.output_tokens) == (5700, 465)
    assert event.usage.cost_usd == Decimal("0.03")


def test_a_commit_line_is_a_message_event():
    [event] = AiderAdapter().parse_line("Commit 1a2b3c4 feat(WP01): add the login form")

    assert (event.kind, event.text) == ("message", "Commit 1a2b3c4 feat(WP01): add the login form")


def test_the_session_is_announced_once_with_aider_s_first_line(standins, tmp_path):
    adapter = AiderAdapter()
    adapter.build_command(run_spec(tmp_path, session_dir=SESSION_DIR, resume_session="S-1", model="openai/gpt-4o"))

    [init] = adapter.parse_line("")  # Aider's output starts with a blank line
    later = adapter.parse_line("Aider v0.86.2")

    assert (init.kind, init.session_id, init.text) == ("init", "S-1", "Aider session S-1 (openai/gpt-4o)")
    assert [e.kind for e in later] == ["log"]


# --- a run of the stand-in CLI -------------------------------------------------------------


def test_a_malformed_line_mid_output_is_logged_and_the_rest_still_parses(standins, repo, tmp_path):
    run = run_adapter(AiderAdapter(), run_spec(repo, env={PROMPT_FILE_ENV: prompt_file(tmp_path)}),
                      env={"STANDIN_MALFORMED": "1"})

    assert any(e.text.startswith('{"type": "malformed"') for e in run.of("log"))
    assert run.usage.cost_usd == Decimal("0.0123")


# --- the output aider 0.86.2 printed against the scripted endpoint ----------------------------


def test_the_recorded_output_gives_aider_s_usage_and_cost_and_its_commit():
    adapter = AiderAdapter()

    events = [e for line in recorded("aider").lines for e in adapter.parse_line(line)]

    [usage] = [e for e in events if e.usage]
    assert (usage.usage.input_tokens, usage.usage.output_tokens) == (1000, 100)
    assert usage.usage.cost_usd == Decimal("0.0035")
    commits = [e.text for e in events if e.kind == "message" and e.text.startswith("Commit ")]
    assert len(commits) == 1 and commits[0].endswith(" feat(WP01): agents check")
