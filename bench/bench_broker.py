"""Which zero-service broker to embed: the project's hardened filesystem transport
(workers/broker.py) against kombu's SQLAlchemy transport on a SQLite file, with bare Celery
workers (bench/_broker_app.py: late acks, prefetch 1, events on), in the same run:

1. send → task start latency, one worker, one task at a time (p50, p95);
2. throughput: 3 workers (concurrency 1 each) draining a burst of no-op tasks;
3. kill -9 of the worker running a task, a new worker started: is the task delivered again?
4. what Flower and remote control see: ``control.ping``, ``inspect().active()``, task events.

The SQLite file is the broker's own (on the project's database file its every-poll write
transactions would also contend with the farm's writes). Needs ``sqlalchemy`` for the second
broker (requirements/dev.txt). Usage: .venv/bin/python bench/bench_broker.py [--quick]
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick, percentile  # noqa: E402

QUICK = is_quick()
LATENCY_RUNS = 5 if QUICK else 20
BURST = 60 if QUICK else 300
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BROKERS = {"filesystem": "hardened filesystem (workers/broker.py)", "sqlalchemy": "kombu SQLAlchemy on SQLite"}


def wait_for(predicate, timeout: float, every: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


class Bed:
    """One broker's folder, its Celery app (imported with the env set) and its worker processes."""

    def __init__(self, kind: str):
        self.kind = kind
        self.folder = Path(tempfile.mkdtemp(prefix=f"ap-bench-broker-{kind}-"))
        self.env = {**os.environ, "BENCH_BROKER": kind, "BENCH_BROKER_DIR": str(self.folder / "broker"),
                    "PYTHONPATH": f"{BENCH}{os.pathsep}{ROOT}"}
        self.workers: list[subprocess.Popen] = []
        self.n = 0

    def app(self):
        os.environ.update(BENCH_BROKER=self.kind, BENCH_BROKER_DIR=self.env["BENCH_BROKER_DIR"])
        sys.modules.pop("_broker_app", None)
        import _broker_app

        return _broker_app.app

    def start_worker(self) -> subprocess.Popen:
        self.n += 1
        log = self.folder / f"worker{self.n}.log"
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "_broker_app", "worker", "-c", "1",
                                 "-n", f"w{self.n}@bench", "-E", "-l", "info", "--without-gossip", "--without-mingle"],
                                cwd=BENCH, env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        if not wait_for(lambda: " ready." in log.read_text(errors="replace") or proc.poll() is not None, 60, 0.1) \
                or proc.poll() is not None:
            raise SystemExit(f"{self.kind} worker did not start:\n{log.read_text(errors='replace')[-2000:]}")
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.workers.clear()

    def mark(self, name: str) -> Path:
        return self.folder / "marks" / name


@contextmanager
def bed(kind: str):
    b = Bed(kind)
    (b.folder / "marks").mkdir(parents=True)
    try:
        yield b
    finally:
        b.stop()
        shutil.rmtree(b.folder, ignore_errors=True)


def latency(b: Bed, app) -> list[float]:
    """Seconds from send to the task's start, one task at a time, one worker."""
    samples = []
    for i in range(LATENCY_RUNS + 1):
        mark = b.mark(f"lat-{i}")
        sent = time.time()
        app.send_task("bench.touch", args=[str(mark)])
        if not wait_for(mark.exists, 30):
            raise SystemExit(f"{b.kind}: task {i} never started")
        started = float(wait_for(lambda m=mark: m.read_text().strip(), 5))
        if i:  # the first one warms the worker's caches
            samples.append(started - sent)
    return samples


def throughput(b: Bed, app) -> float:
    """Tasks/s: a burst of BURST no-op tasks, sent at once, drained by the 3 running workers."""
    marks = [b.mark(f"burst-{i}") for i in range(BURST)]
    start = time.perf_counter()
    for mark in marks:
        app.send_task("bench.touch", args=[str(mark)])
    if not wait_for(lambda: all(m.exists() for m in marks), 600, 0.05):
        raise SystemExit(f"{b.kind}: the burst did not drain in 600 s")
    return BURST / (time.perf_counter() - start)


def kill_nine(b: Bed, app) -> str:
    """A worker killed -9 while its task runs; a new worker started: delivered again, or lost?"""
    mark = b.mark("killed")
    app.send_task("bench.touch", args=[str(mark), 5.0])
    if not wait_for(mark.exists, 30):
        raise SystemExit(f"{b.kind}: the task to kill never started")
    victim = next(p for p in b.workers if p.poll() is None)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    b.start_worker()
    again = wait_for(lambda: len(mark.read_text().splitlines()) > 1, 30, 0.1)
    return "delivered again" if again else "lost (not delivered again in 30 s)"


def remote_view(app) -> dict[str, str]:
    """What Flower and `celery inspect` get from the running workers."""
    try:
        pings = len(app.control.ping(timeout=2.0) or [])
    except Exception as exc:  # noqa: BLE001 - a broker without broadcast raises here
        pings = f"error: {type(exc).__name__}"
    try:
        active = app.control.inspect(timeout=2.0).active()
        active = "answered" if active else "no answer"
    except Exception as exc:  # noqa: BLE001
        active = f"error: {type(exc).__name__}"
    return {"ping replies": str(pings), "inspect active": active, "task events": str(task_events(app))}


def task_events(app) -> int | str:
    """Task events (Flower's source) a receiver saw while one task ran."""
    seen: list[str] = []
    try:
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": lambda event: seen.append(event["type"])})
            thread = threading.Thread(target=receiver.capture, kwargs={"limit": None}, daemon=True)
            thread.start()
            time.sleep(1.0)  # the receiver's queue is bound before the task is sent
            app.send_task("bench.touch", args=[os.devnull])
            time.sleep(3.0)
            receiver.should_stop = True
            thread.join(5)
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"
    return sum(1 for t in seen if t.startswith("task-"))


def measure(kind: str) -> dict:
    with bed(kind) as b:
        app = b.app()
        b.start_worker()
        lat = latency(b, app)
        view = remote_view(app)
        lost = kill_nine(b, app)
        b.start_worker()
        b.start_worker()
        rate = throughput(b, app)
    result = {"p50": percentile(lat, 50) * 1000, "p95": percentile(lat, 95) * 1000, "rate": rate,
              "kill": lost, **view}
    print(f"{BROKERS[kind]}: send → start p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms; "
          f"{rate:.1f} tasks/s with 3 workers; kill -9 mid-task: {lost}; " +
          "; ".join(f"{k}: {v}" for k, v in view.items()))
    return result


def main() -> None:
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        raise SystemExit("kombu's SQLAlchemy transport needs sqlalchemy (requirements/dev.txt)") from None
    fs, sqla = measure("filesystem"), measure("sqlalchemy")
    note = f"{LATENCY_RUNS} runs; bare Celery tasks; baseline: kombu SQLAlchemy transport, own SQLite file"
    emit("broker", [
        Figure("send → task start, hardened filesystem broker (p50)", round(fs["p50"], 1), "ms",
               "kombu SQLAlchemy transport on SQLite (p50)", round(sqla["p50"], 1), "ms", note=note),
        Figure("send → task start, hardened filesystem broker (p95)", round(fs["p95"], 1), "ms",
               "kombu SQLAlchemy transport on SQLite (p95)", round(sqla["p95"], 1), "ms"),
        Figure("3 workers draining a burst, hardened filesystem broker", round(fs["rate"], 1), "tasks/s",
               "kombu SQLAlchemy transport on SQLite", round(sqla["rate"], 1), "tasks/s",
               note=f"{BURST} no-op tasks; kill -9 mid-task: filesystem {fs['kill']}, SQLAlchemy {sqla['kill']}; "
                    f"ping replies {fs['ping replies']} vs {sqla['ping replies']}; inspect {fs['inspect active']} "
                    f"vs {sqla['inspect active']}; task events {fs['task events']} vs {sqla['task events']}"),
    ])


if __name__ == "__main__":
    main()
