"""The opencode adapter runs `opencode run --format json` with the prompt on stdin and reads its
JSON events: step_start, text, tool_use, step_finish (per-step tokens and cost), error."""

from __future__ import annotations

from decimal import Decimal

from harnesses.adapters.opencode import OpencodeAdapter
from tests.support.standins import run_adapter, run_spec, subjects, value_after
from tests.support.streams import recorded

SESSION = "ses_494719016ffe85dkDMj0FPRbHK"
STEP_START = ('{"type":"step_start","timestamp":1767036059338,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK",'
              '"part":{"id":"prt_1","sessionID":"ses_494719016ffe85dkDMj0FPRbHK","messageID":"msg_1",'
              '"type":"step-start","snapshot":"71db24a7"}}')
TOOL_USE = ('{"type":"tool_use","timestamp":1767036061199,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":'
            '{"id":"prt_2","type":"tool","callID":"r9bQ","tool":"bash","state":{"status":"completed","input":'
            '{"command":"git commit -am login","description":"Commit the login form"},"output":"[feat 1a2b3c4] '
            'login\\n","title":"Commit the login form","metadata":{"exit":0}}}}')
STEP_TOOLS = ('{"type":"step_finish","timestamp":1767036061205,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":'
              '{"id":"prt_3","type":"step-finish","reason":"tool-calls","snapshot":"ee3406d5","cost":0.0031,'
              '"tokens":{"input":1200,"output":310,"reasoning":0,"cache":{"read":9000,"write":2100}}}}')
TEXT = ('{"type":"text","timestamp":1767036064268,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_4",'
        '"type":"text","text":"The login form is committed.","time":{"start":1767036064265,"end":1767036064265}}}')
STEP_STOP = ('{"type":"step_finish","timestamp":1767036064273,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":'
             '{"id":"prt_5","type":"step-finish","reason":"stop","snapshot":"09dd05d1","cost":0.0012,'
             '"tokens":{"input":150,"output":60,"reasoning":0,"cache":{"read":11000,"write":0}}}}')
ERROR = ('{"type":"error","timestamp":1767036065000,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","error":'
         '{"name":"APIError","data":{"message":"Rate limit exceeded","statusCode":429,"isRetryable":true}}}')


# --- the command -------------------------------------------------------------------------


def test_runs_with_json_events_and_the_prompt_on_stdin(standins, tmp_path):
    invocation = OpencodeAdapter().build_command(run_spec(tmp_path, prompt="Implement WP01"))

    assert invocation.argv == [str(standins / "opencode"), "run", "--format", "json"]
    assert invocation.stdin_text == "Implement WP01"


def test_the_model_agent_and_session_to_resume_are_passed(standins, tmp_path):
    argv = OpencodeAdapter().build_command(run_spec(tmp_path, model="anthropic/claude-sonnet-4-5",
                                                options={"agent": "build"}, resume_session=SESSION)).argv

    assert value_after(argv, "-m") == "anthropic/claude-sonnet-4-5"
    assert value_after(argv, "--agent") == "build"
    assert value_after(argv, "--session") == SESSION


def test_permissions_are_skipped_only_when_configured(standins, tmp_path):
    assert "--dangerously-skip-permissions" not in OpencodeAdapter().build_command(run_spec(tmp_path)).argv
    argv = OpencodeAdapter().build_command(run_spec(tmp_path, options={"skip_permissions": True})).argv
    assert "--dangerously-skip-permissions" in argv


# --- the stream --------------------------------------------------------------------------


def test_the_first_step_start_gives_the_session():
    adapter = OpencodeAdapter()

    [event] = adapter.parse_line(STEP_START)

    assert (event.kind, event.session_id) == ("init", SESSION)
    assert adapter.parse_line(STEP_START) == []


def test_a_finished_tool_is_a_tool_use_with_its_title():
    [event] = OpencodeAdapter().parse_line(TOOL_USE)

    assert (event.kind, event.text, event.is_error) == ("tool_use", "bash: Commit the login form", False)


def test_each_step_adds_its_tokens_and_cost_and_the_stop_step_is_the_final_result():
    adapter = OpencodeAdapter()
    [first] = adapter.parse_line(STEP_TOOLS)
    adapter.parse_line(TEXT)

    [result] = adapter.parse_line(STEP_STOP)

    assert (first.kind, first.usage.cost_usd) == ("usage", Decimal("0.0031"))
    assert (result.kind, result.final, result.text) == ("result", True, "The login form is committed.")
    assert result.usage.input_tokens == (1200 + 9000 + 2100) + (150 + 11000)  # uncached + cache reads/writes
    assert result.usage.cached_input_tokens == 20000
    assert result.usage.output_tokens == 370
    assert result.usage.cost_usd == Decimal("0.0043")


def test_an_error_event_is_an_error():
    [event] = OpencodeAdapter().parse_line(ERROR)

    assert (event.kind, event.is_error, event.text) == ("error", True, "Rate limit exceeded")


# --- a run of the stand-in CLI: what the real one is not yet run for (tests/integration/dispatch/test_real_clis.py) ---


def test_a_model_without_its_provider_fails_with_an_error_event(standins, repo):
    run = run_adapter(OpencodeAdapter(), run_spec(repo, model="claude-sonnet-4-5"))

    assert run.exit_code == 1
    assert run.of("error")[0].text == "Model not found: claude-sonnet-4-5/"
    assert subjects(repo) == ["initial"]


def test_a_malformed_line_mid_stream_is_logged_and_the_rest_still_parses(standins, repo):
    run = run_adapter(OpencodeAdapter(), run_spec(repo), env={"STANDIN_MALFORMED": "1"})

    [log] = run.of("log")
    assert log.text.startswith('{"type": "malformed"')
    assert run.final.usage.cost_usd == Decimal("0.0043")


# --- the stream opencode 1.18.33 printed against the scripted endpoint ------------------------


def test_the_recorded_stream_gives_the_session_tool_calls_and_the_cli_s_own_cost():
    stream = recorded("opencode")
    adapter = OpencodeAdapter()

    events = [e for line in stream.lines for e in adapter.parse_line(line)]

    [init] = [e for e in events if e.kind == "init"]
    assert init.session_id == stream.objects()[0]["sessionID"]
    tools = [e.text for e in events if e.kind == "tool_use"]
    assert len(tools) == 2 and tools[0].startswith("write: ")
    final = events[-1]
    assert (final.kind, final.final, final.is_error) == ("result", True, False)
    assert final.text == "Done: the work is committed."
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3000, 300)
    assert final.usage.cost_usd == Decimal("0.0135")  # as opencode priced its three steps
