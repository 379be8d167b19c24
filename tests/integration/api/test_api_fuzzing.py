"""Schemathesis against the live OpenAPI schema of a real `agileplus web`: whatever the input,
no 5xx, and every response conforms to the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agileplus.api.services import create_api_token
from agileplus.dispatch.models import DispatchJob
from tests.support.farm import import_target, make_target_repo
from tests.support.server import running_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_fuzzing_the_live_schema_finds_no_server_error(tmp_path, on_postgres):
    feature = import_target(make_target_repo(tmp_path, wps={"WP01": [], "WP02": ["WP01"]}))
    DispatchJob.objects.create(id="job_fuzz", feature=feature, wp=feature.work_packages.get(code="WP01"),
                               harness="command")
    key = create_api_token("fuzzer", "admin")
    with running_web(AGILEPLUS_API_WRITE_RATE="100000/min", AGILEPLUS_API_ANON_RATE="100000/min") as url:
        run = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/api/schema/", "--url", url,
             "-H", f"Authorization: Token {key}", "--checks", "not_a_server_error,response_schema_conformance",
             "--max-examples", "10", "--seed", "7", "--max-time", "40", "--workers", "1",
             "--request-timeout", "30", "--phases", "examples,fuzzing",
             "--exclude-path-regex", "^/api/(features/[^/]+/implement|tokens)$",  # would spawn work / users
             "--report", "junit", "--report-dir", str(tmp_path)],
            cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
