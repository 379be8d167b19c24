"""8 worker processes (own data folders and hostnames) drain a 10-layer DAG of WPs on Redis +
PostgreSQL through `implement --all`: every WP done, no job run to completion twice, the chain
verifies. 100 WPs by default (about a minute here); AGILEPLUS_SCALE_WPS=500 for the full run,
whose throughput bench/bench_scale.py reports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.dispatch.models import DispatchJob
from agileplus.events.models import Event
from tests.support.farm import ROOT, import_target, job_env, make_target_repo, running_workers
from tests.support.services import require_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(900)]

WPS = int(os.environ.get("AGILEPLUS_SCALE_WPS", "100"))
LAYERS, WORKERS = 10, 8


def ten_layers() -> dict[str, list[str]]:
    per_layer = WPS // LAYERS
    codes = [f"WP{i:02d}" for i in range(1, WPS + 1)]
    return {code: [] if i < per_layer else [codes[i - per_layer]] for i, code in enumerate(codes)}


def test_eight_workers_drain_a_ten_layer_dag_with_no_double_run(tmp_path, on_postgres):
    redis = require_service("redis").rsplit("/", 1)[0] + "/9"
    repo = make_target_repo(tmp_path, wps=ten_layers(), behaviour="commit:1", agent={"max_parallel": WORKERS},
                            slug="001-scale")
    feature = import_target(repo)

    with running_workers(tmp_path, WORKERS, broker_url=redis):
        done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "001", "--all", "--wait",
                               "--actor", "human:alice"], cwd=ROOT, env=job_env(tmp_path / "cli", redis),
                              capture_output=True, text=True, timeout=800)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert set(feature.work_packages.values_list("state", flat=True)) == {"done"}
    completed = Counter(Event.objects.filter(subject__endswith=".completed").values_list("subject", flat=True))
    assert max(completed.values()) == 1
    assert DispatchJob.objects.filter(feature=feature, state="succeeded").count() == WPS
    assert len(set(DispatchJob.objects.filter(feature=feature).values_list("worker", flat=True))) == WORKERS
    assert verify_chain(feature).ok
