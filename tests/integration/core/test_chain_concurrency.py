"""16 OS processes append to one feature's audit chain on PostgreSQL: no fork, exact count."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.slow

PROCESSES = 16
NOTES = 5
ROOT = Path(__file__).resolve().parents[3]


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def test_sixteen_processes_appending_to_one_chain_never_fork_it(on_postgres):
    feature, wps = make_feature_with_wps(PROCESSES, chain=False)
    env = {**os.environ, "DATABASE_URL": _database_url()}
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.integration.core.chain_writer", str(wp.pk), str(NOTES)],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for wp in wps
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert [code for code, _ in outcomes] == [0] * PROCESSES, [err for _, err in outcomes if err]
    result = verify_chain(feature)
    assert result.ok, [str(p) for p in result.problems]
    # Per WP: 3 transitions + NOTES entries; the feature follows its WPs: implementing, reviewing, shipped.
    expected = PROCESSES * (3 + NOTES) + 3
    assert result.count == expected
    seqs = list(AuditEntry.objects.filter(feature=feature).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, expected + 1))
