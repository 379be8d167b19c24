"""`--json` is one option with one meaning on every command: the answer and the errors are JSON."""

import json
import subprocess
import sys

import pytest

from tests.support.cli import run_cli
from tests.support.server import ROOT, free_port

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("command", [
    "status no-such-feature --json",
    "wp transition no-such-feature WP01 --to doing --json",
    "costs no-such-feature --json",
    "review no-such-feature WP01 --json",
    "jobs show job_nosuchjob --json",  # these two printed their errors as text before
    "jobs session job_nosuchjob --json",
])
def test_a_refused_command_with_json_prints_its_error_as_json(command):
    result = run_cli(command)

    assert result.exit_code != 0
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    missing = next(word for word in command.split() if "nosuch" in word or "no-such" in word)
    assert error["code"] == "not_found" and missing in error["message"], result.stderr


def test_without_json_the_same_error_is_a_line_for_people():
    result = run_cli("status no-such-feature")

    assert result.exit_code != 0 and result.stderr.startswith("error"), result.stderr


def test_a_remote_command_with_json_prints_its_error_as_json_too():
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"PATH": "/usr/bin:/bin", "AGILEPLUS_URL": unreachable, "AGILEPLUS_TOKEN": "t", "HOME": "/tmp"}

    done = subprocess.run([sys.executable, "-m", "agileplus", "status", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    error = json.loads(done.stderr.strip().splitlines()[-1])["error"]
    assert error["field"] == "AGILEPLUS_URL" and "cannot reach the farm" in error["message"], done.stderr
