"""What the model gateway adds to an agent's model call.

Figures (same run, calls interleaved): time to the first answer byte of a streamed Anthropic
Messages call through the gateway (agent → gateway over loopback HTTP, gateway → provider over
verified TLS, key swapped, usage metered) beside the same call made directly to the provider over
TLS; and stream throughput (SSE events/s of one long answer) through the gateway beside direct.
The provider is the scripted Anthropic endpoint served over TLS with a CA made for the run; it
closes each streamed answer's connection, so both paths pay one TLS handshake per call.
Usage: .venv/bin/python bench/bench_gateway.py [--quick]
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import Figure, emit, is_quick, percentile  # noqa: E402

from harnesses.endpoints import Say, Turn  # noqa: E402
from harnesses.endpoints.anthropic import AnthropicEndpoint  # noqa: E402
from harnesses.gateway import Gateway, GatewayJob, Route  # noqa: E402
from harnesses.jsonlines import price_table  # noqa: E402
from tests.support.tls import make_test_ca  # noqa: E402

BODY = json.dumps({"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 64, "tools": [{"name": "Bash"}],
                   "messages": [{"role": "user", "content": "go"}]})


def first_byte(connect, key: str, path: str) -> tuple[float, int]:
    """Seconds from sending the request to the answer's first body line; then the events read."""
    conn = connect()
    started = time.perf_counter()
    conn.request("POST", path, BODY, {"x-api-key": key, "content-type": "application/json"})
    response = conn.getresponse()
    response.readline()
    ttfb = time.perf_counter() - started
    events = 1 + response.read().count(b"\n\n")
    conn.close()
    return ttfb, events


def serve_endpoint(ca, calls: int, ports) -> None:
    """The provider, in a process of its own (as it is: another machine)."""
    long_answer = [Say(f"chunk {i} " * 8) for i in range(2000)]
    script = [Turn([Say("hi")]) for _ in range(2 * calls)] + [Turn(long_answer)] * 6
    with AnthropicEndpoint(script).serve_tls(ca.server_context()) as endpoint:
        ports.put(endpoint.base_url)
        time.sleep(3600)


def serve_gateway(ca, base_url: str, ports) -> None:
    """The worker's gateway, in a process of its own (the agent is another process)."""
    job = GatewayJob({"anthropic": Route("anthropic", base_url, {"x-api-key": "sk-real"}, "bench")},
                     prices=price_table({"claude-sonnet-4": {"input": "3", "output": "15"}}))
    gateway = Gateway(job, ca_file=str(ca.ca_file))
    ports.put((gateway.listen_locally(), job.placeholder))
    time.sleep(3600)


def main() -> None:
    calls = 40 if is_quick() else 300
    ca = make_test_ca(Path(tempfile.mkdtemp(prefix="bench-gateway-ca-")))
    ports = multiprocessing.Queue()
    provider = multiprocessing.Process(target=serve_endpoint, args=(ca, calls, ports), daemon=True)
    provider.start()
    base_url = ports.get(timeout=60)
    worker = multiprocessing.Process(target=serve_gateway, args=(ca, base_url, ports), daemon=True)
    worker.start()
    port, placeholder = ports.get(timeout=60)
    try:
        through, straight, rates = measure(ca, base_url, port, placeholder, calls)
    finally:
        provider.terminate()
        worker.terminate()
    report(calls, through, straight, rates)


def measure(ca, base_url: str, port: int, placeholder: str, calls: int):
    client_tls = ssl.create_default_context(cafile=str(ca.ca_file))
    host, direct_port = base_url.removeprefix("https://").split(":")

    def via() -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def direct() -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(host, int(direct_port), timeout=30, context=client_tls)

    through, straight = [], []
    for i in range(calls):  # interleaved, so both see the same machine load
        pair = [(via, placeholder, "/anthropic/v1/messages", through), (direct, "sk-real", "/v1/messages", straight)]
        for connect, key, path, samples in pair if i % 2 else reversed(pair):
            samples.append(first_byte(connect, key, path)[0] * 1000)
    rates: dict[str, list[float]] = {"via": [], "direct": []}
    for i in range(6):
        connect, key, path, name = ((via, placeholder, "/anthropic/v1/messages", "via") if i % 2 else
                                    (direct, "sk-real", "/v1/messages", "direct"))
        started = time.perf_counter()
        _, events = first_byte(connect, key, path)
        rates[name].append(events / (time.perf_counter() - started))
    return through, straight, rates


def report(calls: int, through: list[float], straight: list[float], rates: dict) -> None:
    added = [t - s for t, s in zip(through, straight, strict=True)]
    emit("gateway", [
        Figure(f"first byte through the gateway, p50 ({calls} calls)", percentile(through, 50), "ms",
               baseline="direct to the provider over TLS, p50", baseline_value=percentile(straight, 50)),
        Figure("first byte through the gateway, p95", percentile(through, 95), "ms",
               baseline="direct, p95", baseline_value=percentile(straight, 95)),
        Figure("added to first byte per call (paired), p95", percentile(added, 95), "ms",
               note=f"p50 {percentile(added, 50):.2f} ms; aim <= 5 ms p95"),
        Figure("stream throughput through the gateway (6,000-event answer)", max(rates["via"]), "events/s",
               baseline="direct", baseline_value=max(rates["direct"])),
    ])


if __name__ == "__main__":
    main()
