"""Ctrl-C is how `./scripts/demo` ends (it says so): the farm stops, the script says it stopped and
exits 0, whatever the demo was doing at that moment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from agileplus.features.models import Feature
from tests.support.farm import ROOT
from tests.support.server import subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_keeps_to_its_own_database_whatever_the_shell_points_at(tmp_path):
    # The test process's DATABASE_URL is in the environment (as a user's may be): the demo must
    # not import its feature there.
    env = subprocess_env(AGILEPLUS_DATA_DIR=str(tmp_path / "demo"), PORT=str(free_port()))
    demo = subprocess.Popen(["./scripts/demo"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        for line in demo.stdout:
            if line.startswith("Login:"):
                break
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.communicate(timeout=60)

    assert (tmp_path / "demo" / "agileplus.sqlite3").exists()
    assert not Feature.objects.filter(slug="001-greeting-service").exists()


def test_ctrl_c_on_the_demo_says_the_farm_stopped_and_exits_0(tmp_path):
    env = subprocess_env(AGILEPLUS_DATA_DIR=str(tmp_path / "demo"), PORT=str(free_port()))
    demo = subprocess.Popen(["./scripts/demo"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    seen = []
    deadline = time.monotonic() + 240
    for line in demo.stdout:  # until the farm is up (a terminal's Ctrl-C reaches the whole group)
        seen.append(line)
        if line.startswith("Login:") or time.monotonic() > deadline:
            break
    assert any(line.startswith("Login:") for line in seen), "".join(seen)

    os.killpg(demo.pid, signal.SIGINT)
    rest, _ = demo.communicate(timeout=60)

    assert demo.returncode == 0, "".join(seen) + rest
    assert "The farm stopped." in rest
