"""``status --watch`` redraws until Ctrl-C and stops cleanly (a real process and a real SIGINT)."""

import os
import signal
import subprocess
import sys
import threading
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


def _default_sigint() -> None:
    """In the child: Ctrl-C as a terminal delivers it, whatever the test runner inherited (a
    background shell, nohup and many CI runners start it with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_status_watch_redraws_and_stops_on_ctrl_c_without_a_traceback(transactional_db, tmp_path):
    feature, _ = make_feature_with_wps(2)
    env = {**os.environ, "DATABASE_URL": _database_url(), "COLUMNS": "100"}
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from agileplus.cli.main import main; main()", "status", feature.slug,
             "--watch", "--interval", "0.1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err_file, text=True, preexec_fn=_default_sigint,
        )
    chunks: list[str] = []
    redrawn_twice = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            chunks.append(line)
            if "".join(chunks).count("refreshed") >= 2:
                redrawn_twice.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        redrawn_twice.wait(timeout=30)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    output, err = "".join(chunks), stderr.read_text()
    assert output.count("refreshed") >= 2
    assert f"Feature: {feature.slug}" in output
    assert proc.returncode == 0
    assert "Traceback" not in err
