"""AGILEPLUS_LOG_FORMAT=json: each log line is one JSON object; a dispatch job's lines name the job."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from agileplus.core.logs import JsonFormatter, job_logging
from tests.support.server import ROOT, subprocess_env


def record(message: str, **extra) -> logging.LogRecord:
    made = logging.LogRecord("agileplus.runner", logging.WARNING, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_a_line_is_one_json_object_with_time_level_logger_and_message():
    line = json.loads(JsonFormatter().format(record("job failed before the agent ran")))

    assert line["level"] == "WARNING"
    assert line["logger"] == "agileplus.runner"
    assert line["message"] == "job failed before the agent ran"
    assert line["time"].endswith("+00:00")
    assert "job_id" not in line


def test_a_line_logged_during_a_job_run_names_the_job():
    with job_logging("job-7f3a"):
        inside = json.loads(JsonFormatter().format(record("heartbeat missed")))
    after = json.loads(JsonFormatter().format(record("idle")))

    assert inside["job_id"] == "job-7f3a"
    assert "job_id" not in after


def test_a_traceback_stays_inside_the_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        failing = record("crashed", exc_info=sys.exc_info())
    text = JsonFormatter().format(failing)

    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exc_info"]


def test_the_setting_switches_the_console_to_json():
    code = ("import django, logging; django.setup(); "
            "logging.getLogger('agileplus.check').warning('switched')")
    env = subprocess_env(AGILEPLUS_LOG_FORMAT="json", DJANGO_SETTINGS_MODULE="agileplus.settings")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)

    assert json.loads(done.stderr.strip().splitlines()[-1])["message"] == "switched", done.stderr
