"""What every adapter does alike: it finds its agent CLI on PATH (without it, a harness error
that names the harness, the binary and how to install it; with it, the version the CLI prints),
and, where the CLI prints JSON lines, it keeps a line cut short as a log event, word for word; a line
it cannot read is a log event too, and one it half reads still one event (never an exception)."""

from __future__ import annotations

import pytest

from harnesses.adapters.aider import AiderAdapter
from harnesses.adapters.claude_code import ClaudeCodeAdapter
from harnesses.adapters.codex import CodexAdapter
from harnesses.adapters.gemini import GeminiAdapter
from harnesses.adapters.opencode import OpencodeAdapter
from harnesses.base import HarnessError
from tests.support.standins import run_spec
from tests.support.streams import recorded

# (adapter, how to install its CLI, the version its stand-in prints)
ADAPTERS = [
    (AiderAdapter, "aider-install", "aider 0.86.1"),
    (ClaudeCodeAdapter, "npm install -g @anthropic-ai/claude-code", "2.0.37 (Claude Code)"),
    (CodexAdapter, "npm install -g @openai/codex", "codex-cli 0.58.0"),
    (GeminiAdapter, "npm install -g @google/gemini-cli", "0.15.3"),
    (OpencodeAdapter, "npm install -g opencode-ai", "1.0.55"),
]
IDS = [adapter.name for adapter, _, _ in ADAPTERS]


@pytest.mark.parametrize(("adapter", "install", "version"), ADAPTERS, ids=IDS)
def test_a_missing_binary_is_a_harness_error_naming_the_harness_and_how_to_install_it(
        adapter, install, version, no_binaries, tmp_path):
    with pytest.raises(HarnessError) as error:
        adapter().build_command(run_spec(tmp_path))

    assert f"'{adapter.name}'" in str(error.value) and f"`{adapter.binary}`" in str(error.value)
    assert install in str(error.value)


@pytest.mark.parametrize(("adapter", "install", "version"), ADAPTERS, ids=IDS)
def test_availability_is_false_without_the_binary_and_says_how_to_install_it(adapter, install, version, no_binaries):
    found = adapter().availability()

    assert found.available is False and install in found.reason


@pytest.mark.parametrize(("adapter", "install", "version"), ADAPTERS, ids=IDS)
def test_availability_reports_the_version_of_the_binary_on_path(adapter, install, version, standins):
    found = adapter().availability()

    assert (found.available, found.version) == (True, version)


JSON_LINES = [adapter for adapter, _, _ in ADAPTERS if adapter is not AiderAdapter]  # aider prints text


@pytest.mark.parametrize("adapter", JSON_LINES, ids=[adapter.name for adapter in JSON_LINES])
def test_a_json_line_cut_short_becomes_a_log_event_kept_verbatim(adapter):
    whole_line = recorded(adapter.name).lines[-1]
    line = whole_line[: len(whole_line) // 2]

    [event] = adapter().parse_line(line)

    assert (event.kind, event.text) == ("log", line)


# Lines a CLI may print that its adapter cannot read (other output, an event it does not know, a
# value of the wrong type where its text is wanted): each kept word for word as one log event.
UNREADABLE = [
    (AiderAdapter, "Aider v0.86.1"),
    (AiderAdapter, "Applied edit to src/login.py"),
    (AiderAdapter, "Tokens: lots sent, none received."),
    (AiderAdapter, '{"type": "malformed", "text": "cut o'),
    (ClaudeCodeAdapter, "Warning: no stdin data received in 3s"),
    (ClaudeCodeAdapter, "[1, 2]"),
    (ClaudeCodeAdapter, '{"type": "assistant", "message": {"content": 5}}'),
    (ClaudeCodeAdapter, '{"type": "something_new", "data": {}}'),
    (CodexAdapter, "2025-10-01T12:00:00Z WARN codex_core: something"),
    (CodexAdapter, '{"type":"item.completed","item":"not an item"}'),
    (GeminiAdapter, "Loaded cached credentials."),
    (OpencodeAdapter, "INFO  2025-10-10T12:00:00 service=bus publishing"),
    (OpencodeAdapter, '{"type":"future_event","part":{}}'),
]

# Events an adapter knows, with a value it cannot read (usage or stats of another type, a command
# that is not a string): still one event, of the kind the line names; nothing raises.
HALF_READABLE = [
    (CodexAdapter, '{"type":"turn.completed","usage":{"input_tokens":{"nested":1}}}', "result"),
    (GeminiAdapter, '{"type":"tool_use","parameters":{"command":["not","a","string"]}}', "tool_use"),
    (GeminiAdapter, '{"type":"result","status":"success","stats":"none"}', "result"),
    (OpencodeAdapter, '{"type":"step_finish","part":{"reason":"stop","tokens":[1,2],"cost":"n/a"}}', "result"),
]


@pytest.mark.parametrize(("adapter", "line"), UNREADABLE, ids=lambda value: getattr(value, "name", None))
def test_a_line_it_cannot_read_is_kept_verbatim_as_one_log_event(adapter, line):
    [event] = adapter().parse_line(line)

    assert (event.kind, event.text) == ("log", line)


@pytest.mark.parametrize(("adapter", "line", "kind"), HALF_READABLE, ids=lambda value: getattr(value, "name", None))
def test_an_event_with_a_value_it_cannot_read_is_still_one_event(adapter, line, kind):
    [event] = adapter().parse_line(line)

    assert event.kind == kind


def test_a_missing_binary_names_the_pinned_installer_and_the_variable_that_points_at_it(no_binaries, tmp_path):
    with pytest.raises(HarnessError) as error:
        ClaudeCodeAdapter().build_command(run_spec(tmp_path))

    assert "AGILEPLUS_CLAUDE_CODE_BIN=" in str(error.value)
    assert "install-agent-clis" in str(error.value) or "the pinned CLI is installed at" in str(error.value)
