"""``status --watch`` redraws until Ctrl-C and stops cleanly (a real process and a real SIGINT)."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def test_status_watch_redraws_and_stops_on_ctrl_c_without_a_traceback(transactional_db):
    feature, _ = make_feature_with_wps(2)
    env = {**os.environ, "DATABASE_URL": _database_url(), "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from agileplus.cli.main import main; main()", "status", feature.slug,
         "--watch", "--interval", "0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stdout.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "".join(chunks).count("refreshed") < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    proc.wait(timeout=20)
    reader.join(timeout=5)
    output = "".join(chunks)
    assert output.count("refreshed") >= 2
    assert f"Feature: {feature.slug}" in output
    assert proc.returncode == 0
    assert "Traceback" not in err
