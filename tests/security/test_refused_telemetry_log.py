"""A CLI's telemetry knocks on the same refused host all run long (Codex: github.com:443): the log
says it once per destination, the job's result and the events keep every refusal."""

from __future__ import annotations

import pytest

from agileplus.events.models import Event
from agileplus.events.subjects import job_event
from tests.security.support import COMMIT, WP, hostile, job_log

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_repeated_refusals_of_one_host_are_one_log_line_and_all_counted(tmp_path):
    knock = ('python3 -c "import urllib.request as u; u.urlopen(\'https://example.com/\', timeout=5)" '
             '>/dev/null 2>&1 || true\n')
    attack = hostile(tmp_path, WP + knock * 3 + COMMIT, agent={"network": "model", "allowed_hosts": []})

    job = attack.run()

    log = job_log(job)
    assert log.count("Network: refused a connection to example.com:443") == 1, log
    assert job.result["refused_connections"].count("example.com:443") == 3
    assert Event.objects.filter(subject=job_event(job.id, "network_refused")).exists()
