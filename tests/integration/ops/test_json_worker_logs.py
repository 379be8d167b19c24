"""AGILEPLUS_LOG_FORMAT=json (the containers' setting): a worker's output is JSON lines from its first
line on — its own notices, Celery's log lines, no banner — so a log collector never meets text."""

from __future__ import annotations

import json

import pytest

from tests.support.farm import start_worker, stop, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _ready(lines: list[str]) -> bool:
    return any(" ready." in line for line in lines)


def test_a_worker_with_json_logs_writes_only_json_lines_up_to_ready(tmp_path):
    worker = start_worker("jsonlogs", tmp_path / "w", broker_url=None, broker_dir=tmp_path / "broker",
                          loglevel="info", AGILEPLUS_LOG_FORMAT="json")
    try:
        wait_until(lambda: _ready(worker.output().splitlines()) or worker.proc.poll() is not None,
                   timeout=90, what="the worker's ready line")
        lines = [line for line in worker.output().splitlines() if line.strip()]
    finally:
        stop([worker])

    assert _ready(lines), worker.output()[-3000:]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    messages = [entry["message"] for entry in parsed]
    assert any(m.startswith("worker worker@jsonlogs: harnesses command") for m in messages), messages
    assert any(entry["logger"].startswith("celery") for entry in parsed), parsed
