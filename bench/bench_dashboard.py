"""The dashboard's DAG page of a 200-WP feature (20 layers of 10, two dependencies each, three
layers done with their jobs), served by `agileplus web` (uvicorn) on SQLite and drawn by headless
Debian Chromium.

Figures: the page's server time (GET on loopback, median) and weight (HTML + its CSS and JS);
the time from navigation start to the SVG in the DOM (a `performance.mark` right after it) and
to the first contentful paint. Baselines in the same run: GET /api/health (one SELECT 1) and the
feature's existing board page (/features/<slug>/, a table of the same 200 WPs).
Usage: .venv/bin/python bench/bench_dashboard.py [--quick]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick  # noqa: E402
from _farm import ROOT, setup  # noqa: E402

QUICK = is_quick()
WPS = 200
ROUNDS = 5 if QUICK else 30
LOADS = 3 if QUICK else 10
PASSWORD = "bench-pass-1"


def busy_feature():
    from django.contrib.auth.models import User
    from django.utils import timezone

    from agileplus.dispatch.models import DispatchJob
    from tests.factories import make_layered_feature

    feature = make_layered_feature(WPS, done_layers=3)
    now = timezone.now()
    DispatchJob.objects.bulk_create(
        [DispatchJob(id=f"job_{wp.code.lower()}", feature=feature, wp=wp, harness="codex", state="succeeded",
                     requested_by="human:bench", worker="w1", claimed_at=now, started_at=now, finished_at=now,
                     usage={"input_tokens": 1000, "output_tokens": 100, "cost_usd": "0.01"})
         for wp in feature.work_packages.filter(state="done")])
    User.objects.create_user("bench", password=PASSWORD)
    return feature


def serve() -> tuple[subprocess.Popen, str]:
    import httpx

    from tests.support.server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agileplus", "web", "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("agileplus web did not start")


def logged_in(url: str):
    import httpx

    client = httpx.Client(base_url=url, timeout=30)
    client.get("/login/")
    client.post("/login/", data={"username": "bench", "password": PASSWORD,
                                 "csrfmiddlewaretoken": client.cookies["csrftoken"], "next": "/"})
    return client


def median_get(client, path: str) -> tuple[float, int]:
    samples, size = [], 0
    client.get(path)  # warm
    for _ in range(ROUNDS):
        start = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        size = len(response.content)
    return statistics.median(samples), size


def page_weight(client, html: str) -> int:
    """The page's bytes: its HTML and every stylesheet and script it links (served by the project)."""
    import re

    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    return len(html.encode()) + sum(len(client.get(a).content) for a in assets)


def chromium(url: str):
    """Headless Chromium logged in, or None when it is not installed."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--window-size=1280,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    driver.get(f"{url}/login/")
    driver.find_element("name", "username").send_keys("bench")
    driver.find_element("name", "password").send_keys(PASSWORD)
    driver.find_element("css selector", "button[type=submit]").click()
    return driver


PAINT = ("const p = performance.getEntriesByName('first-contentful-paint')[0];"
         " const m = performance.getEntriesByName('dag-drawn')[0];"
         " return [p ? p.startTime : null, m ? m.startTime : null]")


def browser_times(driver, url: str) -> tuple[float, float]:
    """Median (first contentful paint, mark) over LOADS fresh navigations, in ms from navigation start."""
    paints, marks = [], []
    for _ in range(LOADS):
        driver.get(url)
        deadline = time.monotonic() + 10
        while True:
            paint, mark = driver.execute_script(PAINT)
            if paint is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        paints.append(paint or 0.0)
        marks.append(mark or 0.0)
    return statistics.median(paints), statistics.median(marks)


def main() -> None:
    setup("dashboard")
    feature = busy_feature()
    proc, url = serve()
    figures = []
    try:
        client = logged_in(url)
        health, _ = median_get(client, "/api/health")
        board, _ = median_get(client, f"/features/{feature.slug}/")
        dag_ms, _ = median_get(client, f"/features/{feature.slug}/dag")
        weight = page_weight(client, client.get(f"/features/{feature.slug}/dag").text)
        board_weight = page_weight(client, client.get(f"/features/{feature.slug}/").text)
        figures += [
            Figure(f"DAG page of {WPS} WPs: server time (GET, median)", round(dag_ms, 1), "ms",
                   baseline="GET /api/health (same server, same run)", baseline_value=round(health, 1),
                   note=f"board page (table) {board:.1f} ms; {ROUNDS} rounds; uvicorn, SQLite; aim <= 300 ms"),
            Figure(f"DAG page of {WPS} WPs: page weight (HTML + CSS + JS, uncompressed)", round(weight / 1024, 1),
                   "KiB", baseline="the board page (table of the same WPs)",
                   baseline_value=round(board_weight / 1024, 1), note="no CDN, no external library"),
        ]
        driver = chromium(url)
        if driver is not None:
            try:
                board_paint, _ = browser_times(driver, f"{url}/features/{feature.slug}/")
                dag_paint, drawn = browser_times(driver, f"{url}/features/{feature.slug}/dag")
            finally:
                driver.quit()
            figures.append(Figure(f"DAG of {WPS} WPs drawn in headless Chromium (navigation start to SVG in DOM)",
                                  round(drawn, 1), "ms", baseline="first contentful paint of the board page",
                                  baseline_value=round(board_paint, 1),
                                  note=f"DAG page's first paint {dag_paint:.0f} ms; median of {LOADS} loads; "
                                       "aim <= 1000 ms"))
    finally:
        from tests.support.processes import stop_group

        stop_group(proc)
    emit("dashboard", figures)


if __name__ == "__main__":
    main()
