"""Schemathesis against the live OpenAPI schema of a real `agileplus web`: whatever the input, no 5xx,
and every response (status, content type, body) is one the schema documents."""

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

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"

# Real ids most of the time, so requests get past the 404s to the logic behind them.
CONFIG = """
[dictionaries.slugs]
values = ["003-auth-system", "3", "003"]
[dictionaries.wps]
values = ["WP01", "wp2", "WP02", "1"]
[dictionaries.jobs]
values = ["job_fuzz"]

[parameters]
"path.slug" = { dictionary = "slugs", probability = 0.8 }
"path.wp" = { dictionary = "wps", probability = 0.8 }
"path.job_id" = { dictionary = "jobs", probability = 0.8 }
"query.feature" = { dictionary = "slugs", probability = 0.5 }
"""


def test_fuzzing_the_live_schema_finds_no_server_error_and_no_undocumented_response(tmp_path):
    feature = import_target(make_target_repo(tmp_path / "repo", wps={"WP01": [], "WP02": ["WP01"]}))
    DispatchJob.objects.create(id="job_fuzz", feature=feature, wp=feature.work_packages.get(code="WP01"),
                               harness="command", requested_by="human:fuzz")
    key = create_api_token("fuzzer", "admin")
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    # Rates high enough not to trip; queued jobs go to a broker folder of this test only.
    with running_web(AGILEPLUS_API_WRITE_RATE="100000/min", AGILEPLUS_API_AUTH_RATE="100000/min",
                     AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"), CELERY_BROKER_URL="filesystem://localhost//",
                     AGILEPLUS_WORKER_DIR=str(tmp_path / "worker")) as url:
        run = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(tmp_path / "schemathesis.toml"),
             "run", f"{url}/api/schema/", "--url", url,
             "-H", f"Authorization: Token {key}", "--checks", CHECKS, "--max-examples", "25", "--seed", "7",
             "--max-time", "45", "--workers", "1", "--request-timeout", "30", "--phases", "examples,fuzzing",
             "--report", "junit", "--report-dir", str(tmp_path / "report")],
            cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
