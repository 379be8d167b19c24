"""The REST API under 16 concurrent clients (and 1), served by gunicorn (WSGI, 2 processes × 8
threads, persistent DB connections) and by `agileplus web` (uvicorn, ASGI, 2 processes), on
PostgreSQL: GET a feature's status with 50 WPs, and POST a WP transition
(planned ⇄ blocked, one WP per client: lock, audit entry, event, one transaction).
Baseline: GET /api/health (one SELECT 1) under the same load, in the same run.
Usage: .venv/bin/python bench/bench_api.py [--quick]
"""

from __future__ import annotations

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
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
SERVER = os.environ.get("BENCH_SERVER", "gunicorn")
SERVERS = {  # the API is sync Django: WSGI threads; the ASGI server is for the SSE streams
    "gunicorn": lambda port: [str(Path(sys.executable).with_name("gunicorn")), "agileplus.wsgi", "-b",
                              f"127.0.0.1:{port}", "-w", "2", "-k", "gthread", "--threads", "8",
                              "--log-level", "warning"],
    "uvicorn": lambda port: [sys.executable, "-m", "agileplus", "web", "--port", str(port), "--workers", "2"],
}
REQUESTS = 25 if QUICK else 150


def load(url: str, token: str, make_request) -> list[float]:
    import httpx

    samples: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(index: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=30) as http:
            make_request(http, index, -1)  # warm the connection
            barrier.wait()
            mine = []
            for n in range(REQUESTS):
                start = time.perf_counter()
                response = make_request(http, index, n)
                mine.append(time.perf_counter() - start)
                if response.status_code >= 400:
                    raise SystemExit(f"HTTP {response.status_code}: {response.text[:200]}")
            with lock:
                samples.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples


def measure(server_name: str, clients: int, token: str) -> dict[str, list[float]]:
    global CLIENTS
    import socket

    import httpx

    CLIENTS = clients
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "AGILEPLUS_API_WRITE_RATE": "1000000/min",
           # as deployed: persistent connections under gunicorn's threads, none under ASGI
           "AGILEPLUS_DB_CONN_MAX_AGE": "60" if server_name == "gunicorn" else "0"}
    server = subprocess.Popen(SERVERS[server_name](port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/api/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{server_name} did not start") from None
                time.sleep(0.2)

        def toggle(http, i, n):
            target = "blocked" if n % 2 == 0 else "planned"
            return http.post(f"/api/features/001-bench/wps/WP{i + 1:02d}/transition", json={"to": target})

        return {"health": load(url, token, lambda http, i, n: http.get("/api/health")),
                "read": load(url, token, lambda http, i, n: http.get("/api/features/001-bench")),
                "write": load(url, token, toggle)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def main() -> None:
    if not service_reachable(PG_ADMIN_URL):
        print("skipped: PostgreSQL not reachable")
        emit("api", [])
        return
    setup("api", database="postgres")
    from agileplus.api.services import create_api_token
    from agileplus.features.models import Feature, Project, WorkPackage

    project = Project.objects.create(name="bench", repo_url="/tmp/bench")
    feature = Feature.objects.create(project=project, slug="001-bench", number=1, title="bench", state="planned")
    WorkPackage.objects.bulk_create([WorkPackage(feature=feature, code=f"WP{i:02d}", title=f"WP {i}")
                                     for i in range(1, 51)])
    token = create_api_token("bench", "admin")
    figures = []
    for server_name, clients in (("gunicorn", 16), ("gunicorn", 1), ("uvicorn", 16)):
        runs = measure(server_name, clients, token)
        h50, h95 = (percentile(runs["health"], p) * 1000 for p in (50, 95))
        for what, key in (("GET feature status, 50 WPs", "read"), ("POST WP transition", "write")):
            p50, p95 = (percentile(runs[key], p) * 1000 for p in (50, 95))
            print(f"{server_name}, {clients} client(s): {what}: p50 {p50:.1f} ms p95 {p95:.1f} ms; "
                  f"health p50 {h50:.1f} p95 {h95:.1f}")
            figures.append(Figure(f"{what}, {server_name}, {clients} client(s) (p95)", round(p95, 2), "ms",
                                  "GET /api/health, same server and load (p95)", round(h95, 2), "ms",
                                  note=f"p50 {p50:.1f} ms; 2 workers; PostgreSQL; load generator on the same 2 cores"))
    emit("api", figures)


if __name__ == "__main__":
    main()
