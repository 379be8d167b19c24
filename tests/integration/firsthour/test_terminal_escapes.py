"""A hostile agent aims at the operator's terminal (issue 23 item 5): it prints OSC 0 (window title),
OSC 8 (hyperlink), OSC 52 (clipboard), CSI (colour, erase), ``\\r``, backspaces and BEL, and commits
with them in its message; a spec gives a WP such a title. Every screen a person then reads —
`implement`, `status`, `logs` (readable and raw), `jobs show --log`, `review` — shows them as text:
the ESC byte never reaches stdout."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.features.models import WorkPackage
from tests.support.farm import ROOT, import_target, job_env, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RAW = ("\x1b", "\x07", "\x08", "\r", "\x9b")


def agileplus(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"), AGILEPLUS_ACTOR="human:alice")
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


@pytest.fixture
def hostile_run(tmp_path):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": []}, behaviour="escapes"))
    WorkPackage.objects.filter(feature=feature, code="WP01").update(title="Login \x1b]0;owned\x07 endpoint")
    done = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--inline")
    return tmp_path, done


def no_raw_control(out: str) -> bool:
    return not [c for c in RAW if c in out]


def assert_shown_as_text(out: str) -> None:
    assert no_raw_control(out), repr(out)
    assert "\\x1b]52;c;" in out or "\\x1b]0;" in out, out


def test_implement_prints_no_control_character(hostile_run):
    _tmp, done = hostile_run

    assert done.returncode == 0, done.stdout + done.stderr
    assert no_raw_control(done.stdout + done.stderr), repr(done.stdout + done.stderr)


@pytest.mark.parametrize("command", [["status", "003"], ["logs", "003", "WP01"], ["logs", "003", "WP01", "--raw"]])
def test_status_and_logs_show_the_escapes_as_text(hostile_run, command):
    tmp_path, _done = hostile_run

    shown = agileplus(tmp_path, *command)

    assert shown.returncode == 0, shown.stderr
    assert_shown_as_text(shown.stdout)


def test_jobs_show_shows_the_escapes_as_text(hostile_run):
    tmp_path, _done = hostile_run
    job_id = agileplus(tmp_path, "jobs", "list", "--feature", "003").stdout.split()[0]

    shown = agileplus(tmp_path, "jobs", "show", job_id, "--log")

    assert shown.returncode == 0, shown.stderr
    assert_shown_as_text(shown.stdout)


def test_the_review_report_shows_the_escapes_as_text(hostile_run):
    tmp_path, _done = hostile_run

    shown = agileplus(tmp_path, "review", "003", "WP01", "--inline")

    assert_shown_as_text(shown.stdout + shown.stderr)
