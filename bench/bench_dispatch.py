"""The dispatch path.

1. Per-WP orchestration overhead of a no-op agent (one commit): enqueue → claim → mirror fetch +
   worktree → run the agent → commit report → push → governance → finish, through the real
   runner, against a shell script doing the same git work and running the same agent directly.
2. Enqueue-to-agent-start latency with a real `agileplus worker` process, on the embedded
   (filesystem) broker + SQLite and on Redis + PostgreSQL; baseline: a bare Celery no-op task's
   send-to-start time on the same broker, measured in the same run.
Usage: .venv/bin/python bench/bench_dispatch.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick, percentile  # noqa: E402
from _farm import PG_ADMIN_URL, REDIS_URL, ROOT, service_reachable, setup  # noqa: E402

QUICK = is_quick()
RUNS = 4 if QUICK else 12
LATENCY_RUNS = 5 if QUICK else 20
AGENT = ROOT / "tests" / "support" / "agents" / "scripted_agent.py"

BASELINE_SCRIPT = r"""
set -e
mirror="$1"; wt="$2"; branch="$3"; prompt="$4"
git -C "$mirror" fetch --quiet origin '+refs/heads/*:refs/remotes/origin/*'
git -C "$mirror" worktree add --quiet -b "$branch" "$wt" refs/remotes/origin/main
cd "$wt"
AGENT_BEHAVIOUR=commit:1 AGILEPLUS_PROMPT_FILE="$prompt" python3 "$AGENT" > /dev/null
git push --quiet origin "$branch:refs/heads/$branch"
cd / && git -C "$mirror" worktree remove --force "$wt"
"""


def overhead() -> list[Figure]:
    setup("dispatch_overhead")
    from agileplus.dispatch import services
    from agileplus.dispatch.runner import run_job
    from tests.support.farm import import_target, make_target_repo

    root = Path(tempfile.mkdtemp(prefix="ap-bench-overhead-"))
    wps = {f"WP{i:02d}": [] for i in range(1, RUNS + 2)}
    repo = make_target_repo(root, wps=wps, behaviour="commit:1",
                            review={"checks": [{"name": "governance"}]})
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    codes = sorted(wps)
    ours = []
    for i, code in enumerate(codes):
        start = time.perf_counter()
        job = services.enqueue_job(feature.work_packages.get(code=code), actor="human:bench", send=False)
        state = run_job(job.id, "bench")
        if state != "succeeded":
            raise SystemExit(f"{code}: job ended {state}")
        if i:  # the first run also clones the mirror
            ours.append(time.perf_counter() - start)
    mirror = root / "baseline-mirror"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(repo.path), str(mirror)], check=True)
    base = []
    for i in range(RUNS):
        prompt = root / f"prompt-{i}.md"
        prompt.write_text(f"MISSION: implement WP{i + 1:02d}\n")
        start = time.perf_counter()
        subprocess.run(["bash", "-c", BASELINE_SCRIPT, "bench", str(mirror), str(root / f"bwt-{i}"),
                        f"baseline-{i}", str(prompt)], check=True, env={**os.environ, "AGENT": str(AGENT)})
        base.append(time.perf_counter() - start)
    p50, b50 = percentile(ours, 50) * 1000, percentile(base, 50) * 1000
    print(f"orchestration per WP: agileplus p50 {p50:.0f} ms, shell git + agent p50 {b50:.0f} ms, "
          f"ratio {p50 / b50:.2f} ({RUNS} runs each)")
    return [Figure("per-WP orchestration, no-op agent with 1 commit (p50)", round(p50, 1), "ms",
                   "shell script: fetch, worktree, same agent, push", round(b50, 1), "ms",
                   note=f"{RUNS} runs; SQLite; aim: ratio ≤ 1.3")]


def start_latency(database: str, broker: str) -> list[Figure]:
    label = "embedded broker + SQLite" if broker == "embedded" else "Redis + PostgreSQL"
    if broker == "redis" and not (service_reachable(REDIS_URL) and service_reachable(PG_ADMIN_URL)):
        print(f"skipped {label}: Redis or PostgreSQL not reachable")
        return []
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); sys.argv = ['x', {database!r}, {broker!r}]\n"
        + "import bench_dispatch; bench_dispatch.latency_child()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{label}: {out.stderr[-2000:]}")
    ours, base = (list(map(float, line.split(","))) for line in out.stdout.strip().splitlines()[-2:])
    p50, p95 = percentile(ours, 50) * 1000, percentile(ours, 95) * 1000
    b50, b95 = percentile(base, 50) * 1000, percentile(base, 95) * 1000
    print(f"enqueue → agent start, {label}: p50 {p50:.0f} ms p95 {p95:.0f} ms; "
          f"bare Celery no-op send → start p50 {b50:.0f} ms p95 {b95:.0f} ms")
    return [Figure(f"enqueue → agent start, {label} (p50)", round(p50, 1), "ms",
                   "bare Celery no-op task, send → start (p50)", round(b50, 1), "ms",
                   note="agent start includes claim, mirror fetch, worktree, prompt"),
            Figure(f"enqueue → agent start, {label} (p95)", round(p95, 1), "ms",
                   "bare Celery no-op task, send → start (p95)", round(b95, 1), "ms")]


def latency_child() -> None:
    """Runs in its own process: settings are per process (database, broker)."""
    database, broker = sys.argv[1], sys.argv[2]
    folder = setup(f"latency_{broker}", database=database, broker=broker)
    from agileplus.dispatch import services
    from agileplus.dispatch.models import DispatchJob, JobState
    from tests.support.farm import import_target, make_target_repo, start_worker, stop, wait_ready, wait_until

    broker_url = os.environ.get("CELERY_BROKER_URL")
    repo = make_target_repo(folder, wps={f"WP{i:02d}": [] for i in range(1, LATENCY_RUNS + 2)},
                            behaviour="commit:1")
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])  # the scripted agent writes none: governance would fail the job
    worker = start_worker("bench", folder / "worker", broker_url=broker_url, broker_dir=folder / "broker")
    noop = subprocess.Popen([sys.executable, "-m", "celery", "-A", "_noop_app", "worker", "-c", "1", "-l", "warning",
                             "--without-gossip", "--without-mingle", "-n", "noop@bench"],
                            cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT / "bench")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ours, base = [], []
    try:
        wait_ready([worker])
        for i in range(1, LATENCY_RUNS + 2):
            job = services.enqueue_job(feature.work_packages.get(code=f"WP{i:02d}"), actor="human:bench")
            done = wait_until(lambda job=job: DispatchJob.objects.filter(pk=job.id, state__in=JobState.FINAL).first(),
                              timeout=60, every=0.01, what=f"job {job.id}")
            if done.state != JobState.SUCCEEDED:
                raise SystemExit(f"job {done.id} ended {done.state}: {done.error[:300]}")
            if i > 1:  # the first one clones the mirror
                ours.append((done.started_at - done.queued_at).total_seconds())
        sys.path.insert(0, str(ROOT / "bench"))
        from _noop_app import touch

        for i in range(LATENCY_RUNS + 1):
            mark = folder / f"noop-{i}"
            sent = time.time()
            touch.delay(str(mark))
            wait_until(mark.exists, timeout=60, every=0.002, what="the no-op task")
            time.sleep(0.01)
            if i:
                base.append(float(mark.read_text()) - sent)
    finally:
        stop([worker])
        os.killpg(noop.pid, 15)
        noop.wait(timeout=20)
    print(",".join(map(str, ours)))
    print(",".join(map(str, base)))


def main() -> None:
    figures = overhead()
    figures += start_latency("sqlite", "embedded")
    figures += start_latency("postgres", "redis")
    emit("dispatch", figures)


if __name__ == "__main__":
    main()
