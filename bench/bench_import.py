"""Hostile-input figures (issue 14), each beside a baseline measured in the same run:

1. Importing a feature of 1,000 and 10,000 WPs (a dependency chain, one owned folder each):
   wall time and the importing process's peak RSS; baseline: the same process reading and
   YAML-parsing the same files without touching the database.
2. A 10,000-WP feature served: p95 of GET /api/features/<slug> (one page of 200 WPs plus the
   whole feature's totals) and of the dashboard page (200 WPs); baseline: GET /api/health, same
   process.
3. An agent printing 200 MB, then ignoring SIGTERM, timeout 10 s: wall time of the whole run past
   the timeout and the worker's peak RSS (`agileplus implement --inline`, the real runner);
   baseline: a silent agent that ignores SIGTERM, same timeout.

Usage: .venv/bin/python bench/bench_import.py [--quick]   (--quick: 1,000 / 2,000 WPs, 20 MB)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

QUICK = "--quick" in sys.argv
SIZES = (1_000, 2_000) if QUICK else (1_000, 10_000)
FLOOD_MB = 20 if QUICK else 200
FLOOD_TIMEOUT = 10
REQUESTS = 10 if QUICK else 20


def write_feature(root: Path, slug: str, n: int) -> Path:
    tasks = root / "kitty-specs" / slug / "tasks"
    tasks.mkdir(parents=True)
    (root / "kitty-specs" / slug / "spec.md").write_text(f"# Feature {slug}\n")
    (root / "kitty-specs" / slug / "plan.md").write_text("# Plan\n")
    for i in range(1, n + 1):
        deps = f"[WP{i - 1:02d}]" if i > 1 else "[]"
        (tasks / f"WP{i:02d}-step.md").write_text(
            f"---\nwork_package_id: WP{i:02d}\ntitle: Step {i}\ndependencies: {deps}\nestimate: 1 day\n"
            f"owned_files: [src/m{i}/]\ndeliverables: [src/m{i}/mod.py]\nlane: planned\n---\n# Step {i}\nDo it.\n")
    (root / ".kittify").mkdir()
    (root / ".kittify" / "config.yaml").write_text(f"project: bench-{slug}\n")
    return root


def child(mode: str, folder: str) -> None:
    """Run in a fresh process: import (or only parse) ``folder``; print seconds and peak RSS."""
    import _farm  # noqa: F401 - puts the checkout on sys.path
    import django

    django.setup()
    started = time.perf_counter()
    if mode == "import":
        from agileplus.features.importer import import_path

        import_path(folder, actor="human:bench")
    else:
        import yaml

        for path in sorted(Path(folder).rglob("*.md")):
            text = path.read_text()
            if text.startswith("---"):
                yaml.safe_load(text.split("---", 2)[1])
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_kb() / 1024}))


def peak_rss_kb() -> int:
    """This process's own peak RSS (VmHWM; ru_maxrss would carry the parent's peak across fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_child(mode: str, folder: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(folder)], capture_output=True, text=True,
                          env=os.environ, timeout=600)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def p95_ms(client, url: str) -> float:
    from _common import percentile

    client.get(url)  # warm
    samples = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return percentile(samples, 95)


def flood_run(folder: Path, behaviour: str, slug: str) -> tuple[float, float]:
    """Seconds past the timeout for one inline run, and the peak RSS (MB) of that worker process."""
    from tests.support.farm import ROOT, import_target, job_env, make_target_repo

    repo = make_target_repo(folder, wps={"WP01": []}, behaviour=behaviour,
                            agent={"timeout_seconds": FLOOD_TIMEOUT}, slug=slug)
    feature = import_target(repo)
    env = job_env(folder / "cli", None, AGILEPLUS_BROKER_DIR=str(folder / "broker"), grace="5")
    code = ("import runpy, sys\nsys.argv = ['agileplus', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('agileplus', run_name='__main__')\nfinally:\n"
            "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
            "    print('PEAK-RSS-KB', hwm, file=sys.stderr)\n")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "implement", feature.slug, "--wp", "WP01", "--inline"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    peak = next((int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK-RSS-KB")), 0)
    return wall - FLOOD_TIMEOUT, peak / 1024


def main() -> None:
    from _common import Figure, emit
    from _farm import setup

    folder = setup("import")
    from django.contrib.auth import get_user_model
    from django.test import Client

    figures = []
    slug = ""
    for n in SIZES:
        slug = f"{n % 900 + 100:03d}-big"
        root = write_feature(folder / f"repo-{n}", slug, n)
        parsed = run_child("parse", root)
        imported = run_child("import", root)
        figures.append(Figure(f"import a {n:,}-WP feature", imported["seconds"], "s",
                              baseline="read + YAML-parse the same files", baseline_value=parsed["seconds"]))
        figures.append(Figure(f"import a {n:,}-WP feature, peak RSS", imported["rss_mb"], "MB",
                              baseline="read + YAML-parse, peak RSS", baseline_value=parsed["rss_mb"]))

    client = Client()
    client.force_login(get_user_model().objects.create_superuser("bench", "b@example.com", "bench-pw-123"))
    health = p95_ms(client, "/api/health")
    n = SIZES[-1]
    figures.append(Figure(f"GET /api/features/<slug>, {n:,} WPs (p95)", p95_ms(client, f"/api/features/{slug}"),
                          "ms", baseline="GET /api/health, same process (p95)", baseline_value=health,
                          note=f"{REQUESTS} requests; page of 200 WPs + totals; aim < 1,000 ms"))
    figures.append(Figure(f"dashboard feature page, {n:,} WPs (p95)", p95_ms(client, f"/features/{slug}/"), "ms",
                          baseline="GET /api/health, same process (p95)", baseline_value=health,
                          note=f"{REQUESTS} requests; 200 WPs a page; aim < 1,000 ms"))

    past, rss = flood_run(folder / "flood", f"flood_mb:{FLOOD_MB},stubborn", "501-flood")
    quiet_past, quiet_rss = flood_run(folder / "quiet", "stubborn", "502-quiet")
    figures.append(Figure(f"agent printing {FLOOD_MB} MB, timeout {FLOOD_TIMEOUT} s: run ends past the timeout",
                          past, "s", baseline="silent agent ignoring SIGTERM, same timeout", baseline_value=quiet_past,
                          note="grace 5 s; includes worker start-up, push and governance"))
    figures.append(Figure(f"agent printing {FLOOD_MB} MB: worker peak RSS", rss, "MB",
                          baseline="silent agent, worker peak RSS", baseline_value=quiet_rss))
    emit("import", figures)


if __name__ == "__main__":
    if "--child" in sys.argv:
        index = sys.argv.index("--child")
        child(sys.argv[index + 1], sys.argv[index + 2])
    else:
        main()
