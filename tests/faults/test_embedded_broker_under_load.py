"""The embedded (filesystem) broker under load (issue 24): producer processes queueing jobs and
ringing their doorbells again, three real workers, and workers killed (-9) and restarted while
they run. No worker dies of a broker error, every job runs to success once (one successful
claim per job; every other attempt was lost with a killed worker and re-queued by the reaper or
the worker's restart), and nothing lands in the broker's quarantine."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.events.models import Event
from tests.support.farm import ROOT, import_target, make_target_repo, start_beat, start_worker, stop, wait_ready
from tests.support.server import subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(180)]

STRESS_SECONDS = 60  # the whole run, from the first job queued to the last one finished
PRODUCERS, WPS_PER_PRODUCER, WORKERS = 3, 5, 3
KILL_AT = (8, 18, 28)  # seconds into the run: a worker killed -9 (the one running a job) and restarted
BROKER_DEATHS = ("Unrecoverable error", "JSONDecodeError", "kombu/transport")


class Farm:
    """Three workers, each restartable under its own name (a new log per life), and beat."""

    def __init__(self, root):
        self.root, self.broker = root, root / "broker"
        self.lives: dict[str, list] = {}
        self.beat = start_beat(root / "beat", broker_url=None, broker_dir=self.broker)

    def start(self, name: str):
        life = start_worker(name, self.root / f"{name}-{len(self.lives.get(name, []))}", broker_url=None,
                            broker_dir=self.broker)
        self.lives.setdefault(name, []).append(life)
        return life

    def current(self) -> list:
        return [lives[-1] for lives in self.lives.values()]

    def kill_one_and_restart(self) -> str:
        running = set(DispatchJob.objects.filter(state="running").values_list("worker", flat=True))
        victims = [w for w in self.current() if f"worker@{w.name}" in running] or self.current()
        victim = random.choice(victims)
        victim.kill()
        victim.proc.wait(10)
        self.start(victim.name)
        return victim.name

    def logs(self) -> dict[str, str]:
        return {f"{life.name} life {n}": life.output() for lives in self.lives.values()
                for n, life in enumerate(lives)}


def produce(slug: str, codes: list[str]) -> list[subprocess.Popen]:
    share = [codes[i::PRODUCERS] for i in range(PRODUCERS)]
    return [subprocess.Popen([sys.executable, "-m", "tests.faults.broker_race", "producer", slug, *mine], cwd=ROOT,
                             env=subprocess_env()) for mine in share]


def test_producers_three_workers_and_kills_lose_no_job_and_kill_no_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("AGILEPLUS_BROKER_DIR", str(tmp_path / "broker"))  # the producers' broker
    codes = [f"WP{i:02d}" for i in range(1, PRODUCERS * WPS_PER_PRODUCER + 1)]
    repo = make_target_repo(tmp_path, wps={c: [] for c in codes}, behaviour="sleep:1,commit:1",
                            agent={"retries": len(KILL_AT) + 1}, review={"checks": [{"name": "governance"}]})
    feature = import_target(repo)
    farm = Farm(tmp_path)
    workers = [farm.start(f"w{i}") for i in range(1, WORKERS + 1)]
    try:
        wait_ready(workers, timeout=90)
        start = time.monotonic()
        producers = produce(feature.slug, codes)
        killed = []
        for at in KILL_AT:
            while time.monotonic() - start < at:
                time.sleep(0.2)
            killed.append(farm.kill_one_and_restart())
        finished = lambda: DispatchJob.objects.filter(feature=feature, state="succeeded").count()  # noqa: E731
        while finished() < len(codes) and time.monotonic() - start < STRESS_SECONDS:
            time.sleep(0.5)
        elapsed = time.monotonic() - start
        alive = {w.name: w.proc.poll() is None for w in farm.current()}
        assert all(p.wait(30) == 0 for p in producers)
    finally:
        stop(farm.current() + [farm.beat])
    logs = farm.logs()

    assert [name for name, text in logs.items() if any(d in text for d in BROKER_DEATHS)] == [], logs
    assert alive == {f"w{i}": True for i in range(1, WORKERS + 1)}, logs
    jobs = list(DispatchJob.objects.filter(feature=feature))
    assert Counter(j.state for j in jobs) == {"succeeded": len(codes)}, (killed, logs)
    assert sorted(j.wp.code for j in jobs) == codes  # one job per WP: duplicate doorbells made no second job
    lost = Counter(e.metadata["job_id"] for e in AuditEntry.objects.filter(feature=feature,
                                                                          transition__endswith=":attempt_lost")
                   if e.metadata["requeued"])
    assert {j.id: j.attempt - 1 for j in jobs} == {j.id: lost[j.id] for j in jobs}
    assert sum(lost.values()) >= 1  # a kill landed on a running job: the re-queue path was taken
    completed = Counter(Event.objects.filter(feature=feature, subject__endswith=".completed")
                        .values_list("subject", flat=True))
    assert set(completed.values()) == {1}
    print(f"{len(codes)} jobs in {elapsed:.1f}s; killed {killed}; lost attempts re-queued: {dict(lost)}")
    assert list((tmp_path / "broker").glob("quarantine/*")) == []
