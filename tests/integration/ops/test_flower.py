"""Flower, started as the README and docker/compose.yaml start it, sees the farm's workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.farm import job_env, start_worker, stop, wait_ready
from tests.support.server import ROOT, free_port
from tests.support.services import require_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_flower_lists_the_running_worker_through_its_api(tmp_path):
    redis = require_service("redis").rsplit("/", 1)[0] + "/10"
    worker = start_worker("flowerseen", tmp_path / "w", broker_url=redis)
    port = free_port()
    flower = subprocess.Popen(
        [str(Path(sys.executable).with_name("celery")), "-A", "workers.celery", "flower", f"--port={port}",
         "--address=127.0.0.1", "--basic-auth=ops:secret"],
        cwd=ROOT, env=job_env(tmp_path / "flower", redis), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        wait_ready([worker])
        deadline, names = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/workers", params={"refresh": "true"},
                                     auth=("ops", "secret"), timeout=10)
                if response.status_code == 200:
                    names = list(response.json())
                    if "worker@flowerseen" in names:
                        break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        anonymous = httpx.get(f"http://127.0.0.1:{port}/api/workers", timeout=10).status_code
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(20)
        stop([worker])

    assert "worker@flowerseen" in names
    assert anonymous == 401
