"""Live events on PostgreSQL, with a private nats-server (JetStream) started here.

1. Relay throughput: events/s the outbox relay publishes (publish with Nats-Msg-Id, wait for the
   acks, mark published), against raw nats-py JetStream publishes of the same messages with acks.
2. Transition → NATS consumer latency (p50/p95): a relay process running, a push consumer
   listening; the time from the transition's commit to the message's arrival.
3. Transition → SSE client latency (p50/p95): `agileplus web` and a streaming HTTP client.
Usage: .venv/bin/python bench/bench_events.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick, percentile  # noqa: E402
from _farm import PG_ADMIN_URL, ROOT, service_reachable, setup  # noqa: E402

QUICK = is_quick()
BULK = 1000 if QUICK else 5000
SAMPLES = 20 if QUICK else 100
STREAM = "BENCHAP"


def bulk_outbox(n: int) -> None:
    from agileplus.events.models import Event

    Event.objects.bulk_create([Event(subject="agileplus.feature.001-bench.wp.WP01.state.changed",
                                     payload={"from": "planned", "to": "doing", "n": i}) for i in range(n)])


async def raw_publish(url: str, n: int) -> float:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name=STREAM + "RAW", subjects=["raw.>"])
    start = time.perf_counter()
    for chunk in range(0, n, 200):
        acks = [js.publish("raw.x", json.dumps({"n": i}).encode(), headers={"Nats-Msg-Id": f"raw-{i}"})
                for i in range(chunk, min(n, chunk + 200))]
        await asyncio.gather(*acks)
    elapsed = time.perf_counter() - start
    await nc.close()
    return elapsed


def throughput(url: str) -> list[Figure]:
    from agileplus.events.relay import run_relay

    bulk_outbox(BULK)
    start = time.perf_counter()
    sent = asyncio.run(run_relay(url, stream=STREAM, once=True, batch=500))
    ours = time.perf_counter() - start
    raw = asyncio.run(raw_publish(url, BULK))
    print(f"relay: {sent} events in {ours:.2f}s = {sent / ours:,.0f}/s; raw JetStream publish {BULK / raw:,.0f}/s")
    return [Figure(f"outbox relay throughput, {BULK:,} events, PostgreSQL", round(sent / ours), "events/s",
                   "raw nats-py JetStream publish with acks", round(BULK / raw), "events/s",
                   note="relay also reads the rows and marks them published")]


async def consumer_latency(url: str, stamps: dict[str, float], got: dict[str, float], ready: threading.Event,
                           stop: threading.Event) -> None:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()

    async def on_msg(msg):
        got[msg.headers.get("Nats-Msg-Id", "")] = time.perf_counter()
        await msg.ack()

    await js.subscribe("agileplus.feature.001-bench.>", stream=STREAM, cb=on_msg, deliver_policy="new")
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.01)
    await nc.close()


def transitions(n: int, on_commit) -> None:
    from agileplus.features.models import WorkPackage
    from agileplus.features.services import transition_wp

    wp = WorkPackage.objects.get(code="WP02")
    for i in range(n):
        target = "blocked" if i % 2 == 0 else "planned"
        result = transition_wp(wp, target, actor="human:bench")
        on_commit(result)
        time.sleep(0.05)


def nats_latency(url: str) -> list[Figure]:
    from agileplus.events.models import Event

    env = {**os.environ, "NATS_URL": url, "AGILEPLUS_NATS_STREAM": STREAM}
    relay = subprocess.Popen([sys.executable, "-m", "agileplus", "relay"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stamps: dict[str, float] = {}
    got: dict[str, float] = {}
    ready, stop = threading.Event(), threading.Event()
    listener = threading.Thread(target=lambda: asyncio.run(consumer_latency(url, stamps, got, ready, stop)))
    listener.start()
    try:
        ready.wait(10)
        time.sleep(1)

        def committed(result):
            event = Event.objects.filter(subject__endswith="WP02.state.changed").order_by("-id").first()
            stamps[str(event.msg_id)] = time.perf_counter()

        transitions(SAMPLES, committed)
        deadline = time.monotonic() + 20
        while len(set(stamps) & set(got)) < len(stamps) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        listener.join(10)
        os.killpg(relay.pid, signal.SIGTERM)
        relay.wait(20)
    lat = [got[k] - stamps[k] for k in stamps if k in got]
    if len(lat) < len(stamps):
        print(f"warning: {len(stamps) - len(lat)} events not received")
    p50, p95 = percentile(lat, 50) * 1000, percentile(lat, 95) * 1000
    print(f"transition → NATS consumer: p50 {p50:.1f} ms p95 {p95:.1f} ms ({len(lat)} events)")
    return [Figure("transition → NATS JetStream consumer (p50)", round(p50, 2), "ms", note="relay polls every 0.1 s"),
            Figure("transition → NATS JetStream consumer (p95)", round(p95, 2), "ms")]


def sse_latency() -> list[Figure]:
    import httpx

    from agileplus.api.services import create_api_token
    from tests.support.server import running_web

    token = create_api_token("bench-sse", "human")
    stamps: dict[int, float] = {}
    got: dict[int, float] = {}
    with running_web() as url:
        ready = threading.Event()

        def reader():
            with httpx.stream("GET", f"{url}/api/events/stream", headers={"Authorization": f"Token {token}"},
                              timeout=60) as response:
                ready.set()
                for line in response.iter_lines():
                    if line.startswith("id:"):
                        got[int(line[3:].strip())] = time.perf_counter()
                        if len(got) >= SAMPLES:
                            return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        ready.wait(10)
        time.sleep(0.5)
        transitions(SAMPLES, lambda result: stamps.__setitem__(_last_event_id(), time.perf_counter()))
        thread.join(30)
    lat = [got[k] - stamps[k] for k in stamps if k in got]
    p50, p95 = percentile(lat, 50) * 1000, percentile(lat, 95) * 1000
    print(f"transition → SSE client: p50 {p50:.1f} ms p95 {p95:.1f} ms ({len(lat)} events)")
    return [Figure("transition → SSE client, agileplus web (p50)", round(p50, 2), "ms",
                   note="the stream polls the outbox every 0.2 s server-side"),
            Figure("transition → SSE client, agileplus web (p95)", round(p95, 2), "ms")]


def _last_event_id() -> int:
    from agileplus.events.models import Event

    return Event.objects.order_by("-id").values_list("id", flat=True).first()


def main() -> None:
    if not service_reachable(PG_ADMIN_URL):
        print("skipped: PostgreSQL not reachable")
        emit("events", [])
        return
    folder = setup("events", database="postgres")
    from agileplus.features.models import Feature, Project, WorkPackage
    from tests.support.nats_server import NatsServer

    project = Project.objects.create(name="bench", repo_url="/tmp/bench")
    feature = Feature.objects.create(project=project, slug="001-bench", number=1, title="bench", state="planned")
    WorkPackage.objects.create(feature=feature, code="WP02", title="bench")
    server = NatsServer(folder / "jetstream")
    server.start()
    try:
        figures = throughput(server.url)
        figures += nats_latency(server.url)
        figures += sse_latency()
    finally:
        server.stop()
    emit("events", figures)


if __name__ == "__main__":
    main()
