"""The scripted model endpoints: a script is data, each agent request takes the next step, side
requests take none, every request is logged, and failures are what they say (a 429 with
retry-after, a 500, a dropped connection, a stream cut mid-event)."""

from __future__ import annotations

import http.client
import json

import pytest

from harnesses.endpoints import Fail, Run, Say, Turn, Write
from harnesses.endpoints.anthropic import AnthropicEndpoint
from harnesses.endpoints.gemini import GeminiEndpoint
from harnesses.endpoints.openai_chat import ChatEndpoint
from harnesses.endpoints.openai_responses import ResponsesEndpoint

AGENT_BODY = {"model": "m", "stream": True, "tools": [{"name": "Bash"}, {"name": "Write"}],
              "system": "Primary working directory: /w/t\n", "messages": [{"role": "user", "content": "go"}]}


def post(endpoint, path: str, body: dict) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection(endpoint.base_url.removeprefix("http://"), timeout=5)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json", "x-api-key": "k"})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    return response.status, dict(response.getheaders()), text


def sse_types(text: str) -> list[str]:
    return [json.loads(line[6:])["type"] for line in text.splitlines() if line.startswith("data: {")]


def test_each_agent_request_takes_the_next_step_and_is_logged_whole():
    script = [Turn([Say("first")]), Turn([Run("git status")])]
    with AnthropicEndpoint(script) as endpoint:
        _, _, first = post(endpoint, "/v1/messages", AGENT_BODY)
        _, _, second = post(endpoint, "/v1/messages", AGENT_BODY)

    assert '"text": "first"' in first
    assert '"partial_json": "{\\"command\\": \\"git status\\"' in second
    assert [r.consumed_step for r in endpoint.requests] == [0, 1]
    assert endpoint.requests[0].body == AGENT_BODY and endpoint.requests[0].header("X-API-KEY") == "k"


def test_a_side_request_without_tools_takes_no_step():
    with AnthropicEndpoint([Turn([Say("scripted")])]) as endpoint:
        _, _, side = post(endpoint, "/v1/messages", {"model": "haiku", "messages": []})
        _, _, agent = post(endpoint, "/v1/messages", AGENT_BODY)

    assert '"ok"' in side and '"scripted"' in agent
    assert [r.consumed_step for r in endpoint.requests] == [None, 0]


def test_a_write_becomes_the_write_tool_with_the_path_under_the_working_directory():
    with AnthropicEndpoint([Turn([Write("a/b.txt", "x")])]) as endpoint:
        _, _, text = post(endpoint, "/v1/messages", AGENT_BODY)

    start = next(json.loads(line[6:]) for line in text.splitlines() if '"content_block_start"' in line)
    assert start["content_block"]["name"] == "Write"
    assert '\\"file_path\\": \\"/w/t/a/b.txt\\"' in text


def test_after_the_script_the_endpoint_closes_the_conversation():
    with AnthropicEndpoint([], closing_text="all done") as endpoint:
        _, _, text = post(endpoint, "/v1/messages", AGENT_BODY)

    assert '"text": "all done"' in text and '"stop_reason": "end_turn"' in text


def test_a_429_says_when_to_retry():
    with AnthropicEndpoint([Fail("429", retry_after=7)]) as endpoint:
        status, headers, text = post(endpoint, "/v1/messages", AGENT_BODY)

    assert status == 429 and headers["retry-after"] == "7"
    assert json.loads(text)["error"]["type"] == "rate_limit_error"


def test_a_500_is_a_server_error():
    with ResponsesEndpoint([Fail("500")]) as endpoint:
        status, _, text = post(endpoint, "/v1/responses", {"input": [{"role": "user"}], "stream": True})

    assert status == 500 and "Internal server error" in json.loads(text)["error"]["message"]


def test_a_dropped_connection_gets_no_reply():
    with AnthropicEndpoint([Fail("drop")]) as endpoint, pytest.raises(http.client.RemoteDisconnected):
        post(endpoint, "/v1/messages", AGENT_BODY)


def test_a_cut_stream_ends_mid_event():
    with AnthropicEndpoint([Fail("cut")]) as endpoint:
        conn = http.client.HTTPConnection(endpoint.base_url.removeprefix("http://"), timeout=5)
        conn.request("POST", "/v1/messages", json.dumps(AGENT_BODY))
        raw = conn.getresponse().read().decode()

    assert raw.count("\n\n") == 1  # one whole event, then half of the next
    assert "message_stop" not in raw and not raw.endswith("\n\n")


def test_codex_s_shell_tool_gets_the_command_and_usage_completes_the_response():
    body = {"model": "gpt-5", "stream": True, "input": [{"role": "user"}], "tools": [{"name": "exec_command"}]}
    with ResponsesEndpoint([Turn([Run("git commit -m x")], input_tokens=300, output_tokens=20)]) as endpoint:
        _, _, text = post(endpoint, "/v1/responses", body)

    assert sse_types(text)[-1] == "response.completed"
    done = [json.loads(line[6:]) for line in text.splitlines()
            if line.startswith("data: ") and "response.output_item.done" in line][0]
    assert done["item"]["name"] == "exec_command"
    assert json.loads(done["item"]["arguments"]) == {"cmd": "git commit -m x"}
    assert '"input_tokens": 300' in text and '"output_tokens": 20' in text


def test_gemini_gets_a_function_call_and_usage_metadata():
    body = {"contents": [], "tools": [{"functionDeclarations": [{"name": "run_shell_command"}]}]}
    with GeminiEndpoint([Turn([Run("ls")], input_tokens=50, output_tokens=5)]) as endpoint:
        _, _, text = post(endpoint, "/v1beta/models/m:streamGenerateContent?alt=sse", body)

    [chunk] = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert chunk["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "run_shell_command"
    assert chunk["usageMetadata"]["promptTokenCount"] == 50


def test_aider_gets_a_whole_file_edit_and_its_commit_message_request_the_scripted_message():
    with ChatEndpoint([Turn([Write("a.txt", "one\n")])], commit_message="feat(WP01): a") as endpoint:
        _, _, edit = post(endpoint, "/v1/chat/completions", {"messages": [{"role": "user", "content": "go"}]})
        _, _, message = post(endpoint, "/v1/chat/completions", {"messages": [
            {"role": "system", "content": "Write a one-line commit message."}]})

    assert json.loads(edit)["choices"][0]["message"]["content"] == "a.txt\n```\none\n```"
    assert json.loads(message)["choices"][0]["message"]["content"] == "feat(WP01): a"
    assert [r.consumed_step for r in endpoint.requests] == [0, None]


def test_aider_s_commit_message_requests_get_the_scripted_messages_in_order_then_the_last_again():
    ask = {"messages": [{"role": "system", "content": "Write a one-line commit message."}]}
    with ChatEndpoint([], commit_message=["feat(WP01): a", "feat(WP01): b"]) as endpoint:
        answers = [json.loads(post(endpoint, "/v1/chat/completions", ask)[2])["choices"][0]["message"]["content"]
                   for _ in range(3)]

    assert answers == ["feat(WP01): a", "feat(WP01): b", "feat(WP01): b"]
