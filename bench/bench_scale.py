"""Horizontal scale: 8 worker processes (own data folders and hostnames) drain a 10-layer DAG of
no-op WPs (the agent commits one file) on Redis + PostgreSQL, driven by `implement --all`
(agent → governance → review → merge → unblock → dispatch for every WP). Baseline: 8 bare Celery
worker processes draining the same number of no-op tasks on the same Redis, in the same run.
Usage: .venv/bin/python bench/bench_scale.py [--quick]   (full: 500 WPs; quick: 100)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick  # noqa: E402
from _farm import PG_ADMIN_URL, REDIS_URL, ROOT, implement_all, service_reachable, setup  # noqa: E402

QUICK = is_quick()
WPS = int(os.environ.get("BENCH_SCALE_WPS", "100" if QUICK else "500"))
LAYERS = 10
WORKERS = 8


def dag() -> dict[str, list[str]]:
    per_layer = WPS // LAYERS
    codes = [f"WP{i:02d}" for i in range(1, WPS + 1)]
    deps: dict[str, list[str]] = {}
    for i, code in enumerate(codes):
        layer, pos = divmod(i, per_layer)
        deps[code] = [] if layer == 0 else [codes[(layer - 1) * per_layer + pos]]
    return deps


def raw_celery(folder: Path) -> float:
    workers = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "_noop_app", "worker", "-c", "1", "-l",
                                 "warning", "--without-gossip", "--without-mingle", "-n", f"noop{i}@bench"],
                                cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT / "bench")},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
             for i in range(WORKERS)]
    try:
        from _noop_app import app, touch

        while len(app.control.ping(timeout=1.0) or []) < WORKERS:
            time.sleep(0.5)
        marks = [folder / f"noop-{i}" for i in range(WPS)]
        start = time.perf_counter()
        for mark in marks:
            touch.delay(str(mark))
        while not all(m.exists() for m in marks):
            time.sleep(0.01)
        return time.perf_counter() - start
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(30)


def main() -> None:
    if not (service_reachable(PG_ADMIN_URL) and service_reachable(REDIS_URL)):
        print("skipped: Redis or PostgreSQL not reachable")
        emit("scale", [])
        return
    folder = setup("scale", database="postgres", broker="redis")
    from agileplus.dispatch.models import DispatchJob
    from agileplus.events.models import Event
    from tests.support.farm import import_target, job_env, make_target_repo, running_workers

    repo = make_target_repo(folder, wps=dag(), behaviour="commit:1", agent={"max_parallel": WORKERS},
                            slug="001-scale")
    feature = import_target(repo)
    env = job_env(folder / "cli", REDIS_URL)
    with running_workers(folder, WORKERS, broker_url=REDIS_URL):
        done, ours = implement_all(feature.slug, env, timeout=3600)
    if done.returncode != 0:
        from agileplus.audit.models import AuditEntry

        blocked = AuditEntry.objects.filter(feature=feature, transition__endswith="->blocked")[:5]
        raise SystemExit(done.stdout[-1000:] + done.stderr[-1000:] + "\n".join(
            f"{e.transition}: {e.metadata}" for e in blocked))
    completed = Event.objects.filter(subject__endswith=".completed").values_list("subject", flat=True)
    doubles = len(completed) - len(set(completed))
    runs = DispatchJob.objects.filter(feature=feature).count()
    states = set(feature.work_packages.values_list("state", flat=True))
    print(f"{WPS} WPs, {LAYERS} layers, {WORKERS} workers: shipped in {ours:.1f}s = {WPS / ours:.2f} WPs/s; "
          f"jobs {runs}, double completions {doubles}, WP states {sorted(states)}")
    raw = raw_celery(folder)
    print(f"bare Celery: {WPS} no-op tasks on {WORKERS} workers in {raw:.2f}s = {WPS / raw:.0f} tasks/s")
    emit("scale", [Figure(f"{WPS} WPs / {LAYERS}-layer DAG, {WORKERS} workers, Redis + PostgreSQL",
                          round(WPS / ours, 2), "WPs/s", f"bare Celery no-op tasks, {WORKERS} workers",
                          round(WPS / raw, 1), "tasks/s",
                          note=f"every WP: agent, governance, review, serialized merge; {runs} jobs, "
                               f"{doubles} double runs")])


if __name__ == "__main__":
    main()
