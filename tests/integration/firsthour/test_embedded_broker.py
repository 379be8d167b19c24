"""The embedded (filesystem) broker: N processes binding queues to one exchange at the same
moment, as N workers starting at once do, all start, and every binding is kept."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.support.farm import running_workers, wait_ready
from tests.support.server import ROOT

EXCHANGES = 100
BINDER = """
import sys, time
from kombu import Connection, Exchange, Queue
folder, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
options = {"data_folder_in": folder + "/out", "data_folder_out": folder + "/out", "control_folder": folder + "/control"}
with Connection(transport="workers.broker:Transport", transport_options=options) as conn:
    channel = conn.channel()
    while time.time() < start:
        pass  # every binder leaves this loop in the same millisecond
    for n in range(EXCHANGES):  # each exchange file is created by whichever binder comes first
        Queue(f"{name}-{n}", Exchange(f"x{n}", type="fanout"), channel=channel).declare()
""".replace("EXCHANGES", str(EXCHANGES))


def bind_at_once(folder, processes: int) -> list[subprocess.Popen]:
    for sub in ("out", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    start = time.time() + 3  # all started and connected by then, on a loaded 2-core machine
    return [subprocess.Popen([sys.executable, "-c", BINDER, str(folder), f"w{i}", str(start)], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True) for i in range(processes)]


@pytest.mark.slow
def test_processes_binding_one_exchange_at_once_all_succeed_and_keep_every_binding(tmp_path):
    for round_ in range(2):
        folder = tmp_path / f"round{round_}"
        binders = bind_at_once(folder, 6)
        failures = [p.communicate(timeout=120)[1] for p in binders if p.wait(timeout=120) != 0]

        assert failures == []
        for n in range(EXCHANGES):
            table = json.loads((folder / "control" / f"x{n}.exchange").read_text())
            assert sorted(row[2] for row in table) == [f"w{i}-{n}" for i in range(6)]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_started_together_on_a_fresh_embedded_broker_all_come_up(tmp_path):
    with running_workers(tmp_path, 3, broker_url=None, with_beat=False) as workers:
        wait_ready(workers, timeout=120)
        assert all(w.proc.poll() is None for w in workers), "\n".join(w.output() for w in workers)
