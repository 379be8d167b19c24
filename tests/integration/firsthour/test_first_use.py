"""A newcomer's first commands: an empty data folder works at once, a shared database that was
never migrated names `agileplus init`, and a reader that stops reading (`| head -1`) is no error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.server import ROOT, subprocess_env

pytestmark = [pytest.mark.slow]


def clean_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "NATS_URL")}
    return {**env, "AGILEPLUS_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT), **extra}


def agileplus(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_the_first_command_in_an_empty_data_folder_creates_the_database(tmp_path):
    done = agileplus("feature", "list", env=clean_env(tmp_path))

    assert done.returncode == 0, done.stderr
    assert "creating the database" in done.stderr
    assert (tmp_path / "var" / "agileplus.sqlite3").exists()


def test_a_shared_database_without_tables_names_agileplus_init(tmp_path):
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'shared.sqlite3'}")

    done = agileplus("feature", "list", env=env)

    assert done.returncode != 0
    assert "has no AgilePlus tables" in done.stderr and "agileplus init" in done.stderr
    assert "Traceback" not in done.stderr


def test_agileplus_init_migrates_a_shared_database(tmp_path):
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'shared.sqlite3'}")

    assert agileplus("init", env=env).stdout.startswith("Database ready: sqlite")
    assert agileplus("feature", "list", env=env).returncode == 0


@pytest.mark.django_db(transaction=True)
def test_a_reader_that_closed_the_pipe_is_not_an_error(tmp_path):
    from tests.factories import make_feature_with_wps

    make_feature_with_wps(2)  # events to print
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` after it read its line: every write now fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "agileplus", "events", "list"], cwd=ROOT,
                              env=subprocess_env(), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)

    assert (done.returncode, done.stderr) == (0, "")
