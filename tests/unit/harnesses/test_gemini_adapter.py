"""The gemini adapter runs `gemini --output-format stream-json --approval-mode yolo -p PROMPT` and
reads its JSONL events: init, message (streamed chunks joined), tool_use, tool_result, result."""

from __future__ import annotations

from decimal import Decimal

import pytest

from harnesses.adapters.gemini import STDIN_PROMPT_INSTRUCTION, GeminiAdapter
from harnesses.base import HarnessError
from harnesses.jsonlines import ARG_PROMPT_LIMIT
from tests.support.standins import run_adapter, run_spec, subjects, value_after
from tests.support.streams import recorded

INIT = ('{"type":"init","timestamp":"2025-10-10T12:00:00.000Z","session_id":"c25acda3-b6de-4f0e-9f4b-6d8e1c2a3b4c",'
        '"model":"gemini-2.5-pro"}')
USER = '{"type":"message","timestamp":"2025-10-10T12:00:00.010Z","role":"user","content":"Implement WP01"}'
CHUNK_1 = ('{"type":"message","timestamp":"2025-10-10T12:00:01.000Z","role":"assistant",'
           '"content":"I will add","delta":true}')
CHUNK_2 = ('{"type":"message","timestamp":"2025-10-10T12:00:01.100Z","role":"assistant",'
           '"content":" the login form.","delta":true}')
TOOL_USE = ('{"type":"tool_use","timestamp":"2025-10-10T12:00:02.000Z","tool_name":"run_shell_command",'
            '"tool_id":"run_shell_command-1760097602000-1","parameters":{"command":"git commit -am login"}}')
TOOL_ERROR = ('{"type":"tool_result","timestamp":"2025-10-10T12:00:02.500Z","tool_id":"run_shell_command-1",'
              '"status":"error","error":{"type":"execution_denied","message":"Tool execution denied by policy."}}')
RESULT = ('{"type":"result","timestamp":"2025-10-10T12:00:05.000Z","status":"success","stats":{"total_tokens":13950,'
          '"input_tokens":12800,"output_tokens":1150,"cached":8000,"input":4800,"duration_ms":5234,"tool_calls":2}}')
FAILED = ('{"type":"result","timestamp":"2025-10-10T12:00:05.000Z","status":"error","error":{"type":"FatalTurnLimited",'
          '"message":"Reached max session turns"},"stats":{"total_tokens":10,"input_tokens":8,"output_tokens":2,'
          '"cached":0,"input":8,"duration_ms":10,"tool_calls":0}}')


# --- the command -------------------------------------------------------------------------


def test_runs_headless_streaming_json_with_the_prompt_as_argument(standins, tmp_path):
    invocation = GeminiAdapter().build_command(run_spec(tmp_path, prompt="Implement WP01"))

    assert invocation.argv[0] == str(standins / "gemini")
    assert value_after(invocation.argv, "--output-format") == "stream-json"
    assert invocation.argv[-2:] == ["-p", "Implement WP01"]
    assert invocation.stdin_text is None


def test_a_prompt_too_large_for_one_argument_goes_on_stdin(standins, tmp_path):
    prompt = "x" * (ARG_PROMPT_LIMIT + 1)

    invocation = GeminiAdapter().build_command(run_spec(tmp_path, prompt=prompt))

    assert invocation.stdin_text == prompt
    assert invocation.argv[-2:] == ["-p", STDIN_PROMPT_INSTRUCTION]


def test_approval_mode_is_yolo_by_default_so_the_agent_can_commit(standins, tmp_path):
    assert value_after(GeminiAdapter().build_command(run_spec(tmp_path)).argv, "--approval-mode") == "yolo"


def test_an_unknown_approval_mode_is_a_harness_error(standins, tmp_path):
    with pytest.raises(HarnessError, match="approval_mode must be one of"):
        GeminiAdapter().build_command(run_spec(tmp_path, options={"approval_mode": "always"}))


def test_the_model_and_the_session_to_resume_are_passed(standins, tmp_path):
    argv = GeminiAdapter().build_command(run_spec(tmp_path, model="gemini-2.5-flash", resume_session="c25acda3")).argv

    assert value_after(argv, "-m") == "gemini-2.5-flash"
    assert value_after(argv, "--resume") == "c25acda3"


# --- the stream --------------------------------------------------------------------------


def test_init_gives_the_session_and_the_model():
    [event] = GeminiAdapter().parse_line(INIT)

    assert (event.kind, event.session_id, event.model) == (
        "init", "c25acda3-b6de-4f0e-9f4b-6d8e1c2a3b4c", "gemini-2.5-pro")


def test_the_prompt_echo_is_not_reported():
    assert GeminiAdapter().parse_line(USER) == []


def test_streamed_chunks_are_joined_into_one_message_when_the_next_event_arrives():
    adapter = GeminiAdapter()

    assert adapter.parse_line(CHUNK_1) == [] and adapter.parse_line(CHUNK_2) == []
    message, tool = adapter.parse_line(TOOL_USE)

    assert (message.kind, message.text) == ("message", "I will add the login form.")
    assert (tool.kind, tool.text) == ("tool_use", "run_shell_command: git commit -am login")


def test_a_refused_tool_is_an_error_tool_result():
    [event] = GeminiAdapter().parse_line(TOOL_ERROR)

    assert (event.kind, event.is_error, event.text) == ("tool_result", True, "error: Tool execution denied by policy.")


def test_the_result_is_final_with_tokens_and_a_cost_for_the_model_init_named():
    adapter = GeminiAdapter()
    for line in (INIT, CHUNK_1, CHUNK_2):
        adapter.parse_line(line)

    message, result = adapter.parse_line(RESULT)

    assert message.text == "I will add the login form."
    assert (result.kind, result.final, result.is_error) == ("result", True, False)
    assert result.text == "I will add the login form."
    assert (result.usage.input_tokens, result.usage.cached_input_tokens, result.usage.output_tokens) == (
        12800, 8000, 1150)
    # 4800 uncached × $1.25 + 8000 cached × $0.125 + 1150 output × $10, per million tokens
    assert result.usage.cost_usd == Decimal("0.0185")


def test_a_failed_result_is_a_final_error():
    [event] = GeminiAdapter().parse_line(FAILED)

    assert event.final and event.is_error
    assert event.text == "error: Reached max session turns"


# --- a run of the stand-in CLI: what the real one is not yet run for (tests/integration/dispatch/test_real_clis.py) ---


def test_a_large_prompt_reaches_the_cli_on_stdin(standins, repo, tmp_path):
    record = tmp_path / "record.json"
    prompt = "Implement WP01.\n" + "context " * (ARG_PROMPT_LIMIT // 8)

    run = run_adapter(GeminiAdapter(), run_spec(repo, prompt=prompt), env={"STANDIN_RECORD": str(record)})

    assert run.exit_code == 0, run.stderr
    assert record.read_text().count("context") > ARG_PROMPT_LIMIT // 8 - 1
    assert subjects(repo)[0] == "feat(WP01): stand-in change"


def test_a_malformed_line_mid_stream_is_logged_and_the_rest_still_parses(standins, repo):
    run = run_adapter(GeminiAdapter(), run_spec(repo), env={"STANDIN_MALFORMED": "1"})

    [log] = run.of("log")
    assert log.text.startswith('{"type": "malformed"')
    assert run.final.usage.output_tokens == 1150


def test_without_yolo_the_cli_refuses_the_commit(standins, repo):
    run = run_adapter(GeminiAdapter(), run_spec(repo, options={"approval_mode": "auto_edit"}))

    assert subjects(repo) == ["initial"]
    assert any(e.is_error for e in run.of("tool_result"))


def test_the_stand_in_refuses_yolo_together_with_an_approval_mode_as_the_real_cli_does(standins, repo):
    run = run_adapter(GeminiAdapter(), run_spec(repo, options={"extra_args": ["--yolo"]}))

    assert run.exit_code == 2
    assert "Cannot use both --yolo (-y) and --approval-mode" in "\n".join(run.stderr)


# --- the stream Gemini CLI 0.61.0 printed against the scripted endpoint ----------------------


def test_the_recorded_stream_gives_the_session_tool_calls_and_the_result_priced_for_its_model():
    stream = recorded("gemini")
    adapter = GeminiAdapter()

    events = [e for line in stream.lines for e in adapter.parse_line(line)]

    [init] = [e for e in events if e.kind == "init"]
    assert init.session_id == stream.objects()[0]["session_id"] and init.model == "gemini-2.5-flash"
    tools = [e.text for e in events if e.kind == "tool_use"]
    assert tools[0].startswith("write_file: /") and tools[0].endswith("/agents-check.txt")
    assert tools[1] == "run_shell_command: git add agents-check.txt && git commit -q -m 'feat(WP01): agents check'"
    final = events[-1]
    assert (final.kind, final.final, final.is_error) == ("result", True, False)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3000, 300)
    assert final.usage.cost_usd == Decimal("0.00165")  # 3000 × $0.30 + 300 × $2.50 per million
