"""Operating a farm: a /metrics scrape with 10,000 WPs stored, and a webhook's delay after its event.

1. /metrics scrape latency (p50/p95) from `agileplus web` (uvicorn) with 10,000 WPs, 10,000 jobs
   (durations, usage), 10,000 gateway calls, 20,000 outbox events and 10,000 audit entries stored.
   Baseline: GET /api/health (one SELECT 1) from the same server, interleaved, in the same run.
2. Webhook delivery delay (p50/p95): a WP blocked (transition committed) → the signed POST
   arrives at a receiver on loopback. The deliverer is the one `agileplus beat` runs
   (`webhooks.start_deliverer`, every AGILEPLUS_WEBHOOK_POLL_SECONDS = 1 s), started here.
   Baseline: one direct POST to the same receiver.
Usage: .venv/bin/python bench/bench_operations.py [--quick]   (BENCH_DATABASE=postgres for PostgreSQL)
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick, percentile  # noqa: E402
from _farm import ROOT, setup  # noqa: E402

QUICK = is_quick()
WPS = 10_000
SCRAPES = 40 if QUICK else 200
WEBHOOKS = 15 if QUICK else 60
os.environ["AGILEPLUS_WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8"
READ_SECONDS = re.compile(r"^agileplus_metrics_read_seconds (\S+)$", re.M)


def seed(wps: int) -> None:
    """10,000 WPs in 20 features, a finished job each, their gateway calls, events and audit entries."""
    import datetime as dt

    from django.utils import timezone

    from agileplus.audit.models import AuditEntry
    from agileplus.dispatch.models import DispatchJob, ModelCall
    from agileplus.events.models import Event
    from agileplus.features.models import Feature, Project, WorkPackage

    project = Project.objects.create(name="bench", repo_url="/nowhere")
    now = timezone.now()
    per = wps // 20
    for f in range(20):
        feature = Feature.objects.create(project=project, slug=f"{f:03d}-bench", number=f, title="bench",
                                         state="implementing", agent_config={"budget": {"feature_usd": 500}})
        WorkPackage.objects.bulk_create([WorkPackage(feature=feature, code=f"WP{i:04d}", title="w",
                                                     state=random.choice(["planned", "doing", "done", "blocked"]))
                                         for i in range(per)], batch_size=1000)
        ids = list(feature.work_packages.values_list("pk", flat=True))
        jobs = [DispatchJob(id=f"j{f}-{i}", feature=feature, wp_id=wp, harness=random.choice(["codex", "claude-code"]),
                            state=random.choice(["succeeded", "failed", "running", "queued"]), requested_by="human:b",
                            started_at=now - dt.timedelta(seconds=random.uniform(60, 9000)),
                            finished_at=now, usage={"input_tokens": 1000, "output_tokens": 200, "cost_usd": "0.05"})
                for i, wp in enumerate(ids)]
        DispatchJob.objects.bulk_create(jobs, batch_size=1000)
        ModelCall.objects.bulk_create([ModelCall(job=j, feature=feature, wp_id=j.wp_id, harness=j.harness,
                                                 provider="openai", account=f"openai:{i % 3}", model="gpt-5",
                                                 method="POST", path="/v1/responses", outcome="ok", input_tokens=900,
                                                 output_tokens=150, cost_usd="0.04", started_at=now)
                                       for i, j in enumerate(jobs)], batch_size=1000)
        Event.objects.bulk_create([Event(subject=f"agileplus.agent.job.{j.id}.{kind}", payload={}, feature=feature)
                                   for j in jobs for kind in ("started", "completed")], batch_size=2000)
        AuditEntry.objects.bulk_create([AuditEntry(feature=feature, seq=i + 1, wp_id=wp, timestamp=now,
                                                   actor="agent:codex", transition="x", prev_hash=f"{f}-{i}",
                                                   hash=hashlib.sha256(f"{f}-{i}".encode()).hexdigest())
                                        for i, wp in enumerate(ids)], batch_size=1000)


def scrape_latency() -> list[Figure]:
    import httpx

    from agileplus.api.services import create_api_token

    token = create_api_token("prometheus", "ci")
    with httpx.Client(timeout=30) as probe:
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "agileplus", "web", "--port", str(port)], cwd=ROOT,
                                  env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_up(probe, url)
            headers = {"Authorization": f"Bearer {token}"}
            size = len(probe.get(f"{url}/metrics", headers=headers).content)
            metrics, health, reads = [], [], set()
            for _ in range(SCRAPES):
                for path, samples in (("/metrics", metrics), ("/api/health", health)):
                    start = time.perf_counter()
                    answer = probe.get(url + path, headers=headers)
                    samples.append(time.perf_counter() - start)
                    assert answer.status_code == 200, answer.text[:300]
                    reads |= set(READ_SECONDS.findall(answer.text))
                time.sleep(0.05)  # 200 scrapes over ~10 s: the refresher reads the database meanwhile
        finally:
            server.terminate()
            server.wait(timeout=20)
    base = percentile(health, 95) * 1000
    return [Figure(f"/metrics scrape p95, {WPS:,} WPs stored ({size:,} bytes)", percentile(metrics, 95) * 1000, "ms",
                   baseline="GET /api/health p95, same server", baseline_value=base, note="aim <= 50 ms"),
            Figure("/metrics scrape p50", percentile(metrics, 50) * 1000, "ms",
                   baseline="GET /api/health p50", baseline_value=percentile(health, 50) * 1000),
            Figure("reading the figures from the database (the web process's refresher, every 10 s), max",
                   max(float(r) for r in reads) * 1000, "ms", note=f"{len(reads)} reads seen")]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(client, url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if client.get(f"{url}/api/health").status_code == 200:
                return
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        time.sleep(0.1)
    raise SystemExit("agileplus web did not start")


class Arrivals:
    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self.cond = threading.Condition()

    def handler(self):
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                import json

                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                self.send_response(200)
                self.end_headers()
                with arrivals.cond:
                    arrivals.times[body.get("event", {}).get("id", -1)] = time.perf_counter()
                    arrivals.cond.notify_all()

            def log_message(self, *_a) -> None:
                pass

        return Handler


def webhook_delay() -> list[Figure]:
    import httpx
    from django.conf import settings

    from agileplus.events.models import Event
    from agileplus.features.models import WorkPackage
    from agileplus.features.services import transition_wp
    from agileplus.operations import webhooks

    arrivals = Arrivals()
    server = ThreadingHTTPServer(("127.0.0.1", 0), arrivals.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    webhooks.add_endpoint("bench", url, ["wp.blocked"])
    stop = threading.Event()
    webhooks.start_deliverer(stop)  # as `agileplus beat` does
    delays = []
    planned = list(WorkPackage.objects.filter(state="planned").values_list("pk", flat=True)[:WEBHOOKS])
    for wp in planned:
        time.sleep(random.uniform(0, 0.5))  # not in step with the tick
        transition_wp(wp, "blocked", actor="system:agileplus", event_extra={"reason": "bench"})
        committed = time.perf_counter()
        event_id = Event.objects.filter(subject__endswith=".state.changed", payload__to="blocked").latest("pk").pk
        with arrivals.cond:
            if not arrivals.cond.wait_for(lambda wanted=event_id: wanted in arrivals.times, timeout=30):
                raise SystemExit(f"webhook of event {event_id} did not arrive in 30 s")
            delays.append(arrivals.times[event_id] - committed)
    stop.set()
    with httpx.Client() as client:
        direct = []
        for _ in range(20):
            start = time.perf_counter()
            client.post(url, content=b"{}")
            direct.append(time.perf_counter() - start)
    server.shutdown()
    return [Figure(f"webhook delivered after its event's commit, p95 ({len(delays)} WPs blocked)",
                   percentile(delays, 95) * 1000, "ms", baseline="direct POST to the same receiver, p95",
                   baseline_value=percentile(direct, 95) * 1000,
                   note=f"aim <= 2000 ms; beat tick every {settings.WEBHOOK_POLL_SECONDS:g} s"),
            Figure("webhook delivered after its event's commit, p50", percentile(delays, 50) * 1000, "ms")]


def main() -> None:
    setup("operations", database=os.environ.get("BENCH_DATABASE", "sqlite"))
    start = time.perf_counter()
    seed(WPS)
    print(f"seeded {WPS:,} WPs in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    emit("operations", scrape_latency() + webhook_delay())


if __name__ == "__main__":
    main()
