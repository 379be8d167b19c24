"""Bad files in a real worker's embedded broker folder (issue 24): a corrupt or foreign file there
when the worker starts is quarantined by its start-up check, one that arrives while it runs is
quarantined by its reader; the worker lives on and the job queued behind the file runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.dispatch.models import DispatchJob
from agileplus.dispatch.services import queue_for
from tests.support.farm import ROOT, import_target, job_env, make_target_repo, running_workers, wait_until
from workers.broker import message_name

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(180)]


def test_a_worker_quarantines_bad_broker_files_and_runs_the_job_behind_them(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:1")
    feature = import_target(repo)
    out = tmp_path / "broker" / "out"
    out.mkdir(parents=True)
    at_start = {message_name(queue_for("command")): b"", "core.1234": b"\x7fELF foreign"}
    for name, content in at_start.items():
        (out / name).write_bytes(content)

    with running_workers(tmp_path, 1, broker_url=None) as (worker, _beat):
        arrived = message_name(queue_for("command"))  # sorts before the job's doorbell
        (out / arrived).write_bytes(b'{"body": "eyJ", "properties": {"delivery_')
        env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))
        subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--no-wait"],
                       cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
        job = wait_until(lambda: DispatchJob.objects.filter(feature=feature, state="succeeded").first(),
                         timeout=90, what="the job queued behind the bad file to succeed")
        assert worker.proc.poll() is None

    log = worker.output()
    assert all(f"broker file {name} quarantined" in log for name in at_start), log
    assert f"/{arrived} (not JSON" in log  # quarantined by the reader that took it
    assert sorted(f.name.split("-", 1)[1] for f in (tmp_path / "broker" / "quarantine").iterdir()) == sorted(
        [*at_start, arrived])
    assert job.attempt == 1
