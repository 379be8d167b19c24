"""The model gateway: the agent's calls carry a per-job placeholder; the gateway swaps in the
worker's key, forwards over verified HTTPS (the scripted endpoints served with a CA this test
makes), streams the answer back as it comes, and records one call with the usage the provider
reported, priced; anything else is refused and recorded."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from decimal import Decimal

import pytest

from harnesses.endpoints import Fail, Say, Turn
from harnesses.endpoints.anthropic import AnthropicEndpoint
from harnesses.endpoints.gemini import GeminiEndpoint
from harnesses.endpoints.openai_chat import ChatEndpoint
from harnesses.endpoints.openai_responses import ResponsesEndpoint
from harnesses.gateway import Gateway, GatewayCall, GatewayJob, Refusal, Route
from harnesses.jsonlines import price_table
from tests.support.tls import make_test_ca

REAL_KEY = "sk-real-worker-key-0123456789"
TOOLS = [{"name": "Bash"}, {"name": "Write"}, {"name": "run_shell_command"}]
BODIES = {
    "anthropic": ("/anthropic/v1/messages", {"model": "claude-sonnet-4-5", "stream": True, "tools": TOOLS,
                                             "messages": [{"role": "user", "content": "go"}]}),
    "openai_responses": ("/openai/responses", {"model": "gpt-5", "stream": True, "tools": TOOLS, "input": "go"}),
    "openai_chat": ("/openai/chat/completions", {"model": "gpt-5", "stream": True, "tools": TOOLS,
                                                 "messages": [{"role": "user", "content": "go"}]}),
    "gemini": ("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
               {"tools": TOOLS, "contents": [{"role": "user", "parts": [{"text": "go"}]}]}),
}
ENDPOINTS = {"anthropic": AnthropicEndpoint, "openai_responses": ResponsesEndpoint, "openai_chat": ChatEndpoint,
             "gemini": GeminiEndpoint}
PROVIDER = {"anthropic": "anthropic", "openai_responses": "openai", "openai_chat": "openai", "gemini": "gemini"}
AUTH = {"anthropic": {"x-api-key": REAL_KEY}, "openai": {"authorization": f"Bearer {REAL_KEY}"},
        "gemini": {"x-goog-api-key": REAL_KEY}}
PRICES = price_table({"claude-sonnet-4": {"input": "3", "cached_input": "0.3", "output": "15"},
                      "gpt-5": {"input": "1.25", "cached_input": "0.125", "output": "10"}})


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_test_ca(tmp_path_factory.mktemp("ca"))


class Harness:
    """A gateway for one job in front of one TLS endpoint, and the calls it recorded."""

    def __init__(self, endpoint, ca, protocol: str, admit=None):
        self.endpoint, self.provider = endpoint, PROVIDER[protocol]
        self.calls: list[GatewayCall] = []
        self.recorded = threading.Event()
        route = Route(self.provider, endpoint.base_url + ("/v1" if self.provider == "openai" else ""),
                      auth=AUTH[self.provider], account="acct-1")
        self.job = GatewayJob({self.provider: route}, prices=PRICES, on_call=self._on_call,
                              admit=admit or (lambda _call: None))
        self.gateway = Gateway(self.job, ca_file=str(ca.ca_file))
        self.port = self.gateway.listen_locally()

    def _on_call(self, call: GatewayCall) -> None:
        self.calls.append(call)
        self.recorded.set()

    def wait_calls(self, count: int) -> list[GatewayCall]:
        deadline = time.monotonic() + 10
        while len(self.calls) < count and time.monotonic() < deadline:
            self.recorded.wait(0.05)
        return self.calls

    def wait_recorded(self) -> GatewayCall:
        assert self.recorded.wait(10), "the gateway recorded no call"
        return self.calls[-1]

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def post(self, path: str, body: dict, key: str | None = None, header: str = "x-api-key"):
        conn = self.connect()
        conn.request("POST", path, json.dumps(body), {"content-type": "application/json",
                                                      header: key or self.job.placeholder})
        response = conn.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())


@pytest.fixture
def through(ca):
    """``through(protocol, script)``: a started TLS endpoint and the gateway before it."""
    made = []

    def make(protocol: str, script: list, admit=None) -> Harness:
        endpoint = ENDPOINTS[protocol](script).serve_tls(ca.server_context()).start()
        made.append(endpoint)
        return Harness(endpoint, ca, protocol, admit)

    yield make
    for endpoint in made:
        endpoint.stop()


@pytest.mark.parametrize("protocol", sorted(BODIES))
def test_a_call_is_billed_exactly_what_the_provider_billed(through, protocol):
    harness = through(protocol, [Turn([Say("hi")], input_tokens=1200, output_tokens=70, cached_input_tokens=200)])
    path, body = BODIES[protocol]

    status, text, _ = harness.post(path, body)
    call = harness.wait_recorded()

    assert status == 200, text
    assert harness.endpoint.billed["calls"] == 1
    assert (call.usage.input_tokens, call.usage.cached_input_tokens, call.usage.output_tokens) == (1200, 200, 70)
    assert (call.outcome, call.account, call.reported) == ("ok", "acct-1", True)


@pytest.mark.parametrize("protocol", sorted(BODIES))
def test_the_provider_gets_the_worker_s_key_and_never_the_placeholder(through, protocol):
    harness = through(protocol, [Turn([Say("hi")])])
    path, body = BODIES[protocol]
    header = {"anthropic": "x-api-key", "openai": "authorization", "gemini": "x-goog-api-key"}[harness.provider]

    harness.post(path, body, key=f"Bearer {harness.job.placeholder}" if header == "authorization" else None,
                 header=header)

    sent = harness.endpoint.requests[-1]
    assert sent.header(header) == AUTH[harness.provider][header]
    assert harness.job.placeholder not in json.dumps(sent.headers)


def test_the_answer_streams_back_event_by_event_not_buffered(through):
    slow = Turn([Say("one"), Say("two"), Say("three")], pause_between_events=0.3)
    harness = through("anthropic", [slow])
    conn = harness.connect()
    conn.request("POST", BODIES["anthropic"][0], json.dumps(BODIES["anthropic"][1]),
                  {"x-api-key": harness.job.placeholder, "content-type": "application/json"})
    started = time.monotonic()
    response = conn.getresponse()
    first = response.readline()
    first_at = time.monotonic() - started
    rest = response.read()
    total = time.monotonic() - started

    assert first.startswith(b"event: message_start")
    assert first_at < 0.3 < total - first_at  # the first event came before the model's pauses
    assert b"event: message_stop" in rest


def test_a_wrong_key_is_refused_in_the_provider_s_words_and_never_forwarded(through):
    harness = through("anthropic", [Turn([Say("hi")])])

    status, text, _ = harness.post(*BODIES["anthropic"], key="sk-guessed")
    call = harness.wait_recorded()

    assert status == 401
    assert json.loads(text)["error"]["type"] == "authentication_error"
    assert harness.endpoint.requests == []
    assert call.outcome == "refused"


def test_a_path_outside_the_model_api_is_refused_and_recorded(through):
    harness = through("anthropic", [Turn([Say("hi")])])

    status, text, _ = harness.post("/anthropic/v1/organizations/keys", {})
    harness.wait_recorded()

    assert status == 403
    assert "does not forward POST /anthropic/v1/organizations/keys" in json.loads(text)["error"]["message"]
    assert harness.endpoint.requests == []
    assert harness.job.refused == ["POST /anthropic/v1/organizations/keys: the model gateway does not forward "
                                   "POST /anthropic/v1/organizations/keys"]


def test_a_provider_whose_certificate_does_not_verify_is_not_called(tmp_path, ca):
    stranger = make_test_ca(tmp_path / "stranger")  # a certificate the gateway's CA did not sign
    with AnthropicEndpoint([Turn([Say("hi")])]).serve_tls(stranger.server_context()) as endpoint:
        harness = Harness(endpoint, ca, "anthropic")
        status, text, _ = harness.post(*BODIES["anthropic"])
        call = harness.wait_recorded()

    assert status == 502
    assert "CERTIFICATE_VERIFY_FAILED" in call.detail
    assert call.outcome == "upstream_error"


def test_a_call_refused_by_admit_never_reaches_the_provider(through):
    def over_budget(call: GatewayCall) -> Refusal:
        return Refusal("budget_exceeded", f"AgilePlus budget job_usd exceeded before {call.model}")

    harness = through("anthropic", [Turn([Say("hi")])], admit=over_budget)
    status, text, _ = harness.post(*BODIES["anthropic"])

    assert status == 403
    assert json.loads(text)["error"]["message"] == "AgilePlus budget job_usd exceeded before claude-sonnet-4-5"
    assert harness.endpoint.requests == []


def test_a_call_whose_agent_hung_up_is_read_to_its_end_and_billed(through):
    harness = through("anthropic", [Turn([Say("a"), Say("b")], input_tokens=900, output_tokens=40,
                                         pause_between_events=0.2)])
    body = json.dumps(BODIES["anthropic"][1]).encode()
    agent = socket.create_connection(("127.0.0.1", harness.port), timeout=10)
    agent.sendall(f"POST {BODIES['anthropic'][0]} HTTP/1.1\r\nhost: x\r\nx-api-key: {harness.job.placeholder}\r\n"
                  f"content-length: {len(body)}\r\n\r\n".encode() + body)
    assert agent.recv(65536).startswith(b"HTTP/1.1 200")  # the answer has begun
    agent.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    agent.close()  # the agent is killed mid-answer (its connection reset)

    call = harness.wait_recorded()

    assert call.client_gone
    assert (call.usage.input_tokens, call.usage.output_tokens) == (900, 40)


def test_a_known_model_is_priced_and_an_unknown_one_is_unknown_never_zero(through):
    harness = through("anthropic", [Turn([Say("hi")], input_tokens=1000, output_tokens=100)])
    harness.post(*BODIES["anthropic"])
    priced = harness.wait_recorded()
    harness.recorded.clear()
    harness.post(BODIES["anthropic"][0], {**BODIES["anthropic"][1], "model": "claude-mystery-9"})
    unknown = harness.wait_recorded()

    assert priced.cost_usd == Decimal("0.0045")  # 1000 × $3 + 100 × $15 per million
    assert (unknown.model, unknown.cost_usd) == ("claude-mystery-9", None)


def test_a_stream_cut_mid_event_is_forwarded_as_sent_and_billed_for_what_was_reported(through):
    harness = through("anthropic", [Fail("cut")])

    status, text, _ = harness.post(*BODIES["anthropic"])
    call = harness.wait_recorded()

    assert status == 200 and text.startswith("event: message_start")
    assert call.outcome == "truncated"
    assert call.usage.input_tokens == 1000  # message_start's input, as the provider reported it


def test_a_call_in_flight_holds_a_reservation_so_a_parallel_call_cannot_slip_past_a_budget(through):
    limit = Decimal("0.008")  # each call: 1000 × $3 + 100 × $15 per million = $0.0045

    def admit(call: GatewayCall) -> Refusal | None:
        return Refusal("budget_exceeded", "over") if harness.job.committed() >= limit else None

    slow = Turn([Say("a"), Say("b")], pause_between_events=0.5)
    harness = through("anthropic", [Turn([Say("hi")]), slow, Turn([Say("never")])], admit=admit)
    harness.post(*BODIES["anthropic"])  # $0.0045 spent
    harness.wait_recorded()
    in_flight = threading.Thread(target=harness.post, args=BODIES["anthropic"])
    in_flight.start()
    deadline = time.monotonic() + 10
    while len(harness.endpoint.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

    status, text, _ = harness.post(*BODIES["anthropic"])  # $0.0045 spent + $0.0045 reserved
    in_flight.join(10)
    harness.wait_calls(3)  # the first, the refused one, then the one that was in flight

    assert status == 403 and len(harness.endpoint.requests) == 2
    assert harness.job.spent == Decimal("0.009") and harness.job.reserved == {}
