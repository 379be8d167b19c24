"""Flower, started as the README documents it (``scripts/flower``), sees the farm's workers, asks
for a login, and refuses to run open (without FLOWER_BASIC_AUTH, on a non-loopback address)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.farm import job_env, start_worker, stop, wait_ready
from tests.support.server import ROOT, free_port
from tests.support.services import require_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FLOWER = ROOT / "scripts" / "flower"


def test_flower_lists_the_running_worker_through_its_api(tmp_path):
    redis = require_service("redis").rsplit("/", 1)[0] + "/10"
    worker = start_worker("flowerseen", tmp_path / "w", broker_url=redis)
    port = free_port()
    env = job_env(tmp_path / "flower", redis, FLOWER_BASIC_AUTH="ops:secret", FLOWER_PORT=str(port),
                  FLOWER_ADDRESS="127.0.0.1")
    flower = subprocess.Popen([str(FLOWER)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
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


@pytest.mark.parametrize("address", [None, "0.0.0.0"])
def test_the_documented_start_refuses_to_run_without_auth_on_an_open_address(tmp_path, address):
    env = {k: v for k, v in job_env(tmp_path / "flower").items() if not k.startswith("FLOWER_")}
    if address:
        env["FLOWER_ADDRESS"] = address
    result = subprocess.run([str(FLOWER)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH is not set" in result.stderr


def test_the_documented_start_refuses_an_address_passed_around_its_checks(tmp_path):
    result = subprocess.run([str(FLOWER), "--address=0.0.0.0"], cwd=ROOT, env=job_env(tmp_path / "flower"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "FLOWER_ADDRESS" in result.stderr


def test_without_auth_on_loopback_flower_listens_on_loopback_only(tmp_path):
    port = free_port()
    env = {k: v for k, v in job_env(tmp_path / "flower").items() if not k.startswith("FLOWER_")}
    env.update(FLOWER_ADDRESS="127.0.0.1", FLOWER_PORT=str(port))
    flower = subprocess.Popen([str(FLOWER)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline, listening = time.monotonic() + 60, []
        while time.monotonic() < deadline and not listening:
            listening = _listeners(port)
            time.sleep(0.5)
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(20)
    assert listening == ["127.0.0.1"]


def _listeners(port: int) -> list[str]:
    """The IPv4 addresses listening on ``port`` (Linux /proc/net/tcp, state 0A = LISTEN)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.append(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found
