"""The review runs the agent's own tests; what they print is agent output too. An agent-written
test that finds a secret of the process running the review (in /proc, where that process's
environment is visible) and prints it plainly, base64 and reversed leaves no form of it in the
stored review report (which the CLI, the API and the dashboard serve) or anywhere else."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from agileplus.review.models import ReviewReport
from tests.support.cli import run_cli
from tests.support.farm import PYTEST_CHECK, ROOT, import_target, job_env, make_target_repo, outbox_dir
from tests.support.stored import every_stored_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "review-held-3f8a1c6e9b2d"
# Always fails, so that its output is in the report. Under a sandbox /proc shows no farm process
# and the values are empty, which passes this test just as well.
LEAKY_TEST = """import base64
import glob


def found() -> str:
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            for entry in open(path, "rb").read().split(b"\\0"):
                if entry.startswith(b"AGILEPLUS_SECRET_REVIEW_LEAK="):
                    return entry.split(b"=", 1)[1].decode()
        except OSError:
            pass
    return ""


def test_leak():
    value = found()
    shown = base64.b64encode(value.encode()).decode()
    assert False, f"leak [{value}] [{shown}] [{value[::-1]}]"
"""


def test_a_secret_printed_by_the_agents_tests_in_review_is_stored_nowhere(tmp_path):
    change = outbox_dir(tmp_path, "change")  # the agent reads it from inside its sandbox
    (change / "tests").mkdir(parents=True)
    (change / "tests" / "test_leak.py").write_text(LEAKY_TEST)
    repo = make_target_repo(tmp_path, wps={"WP01": []}, environment={"AGENT_BEHAVIOUR": f"apply:{change}"},
                            review={"checks": [PYTEST_CHECK]})
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    assert "for_review" in run_cli("implement 003 --wp WP01 --inline").output

    review = subprocess.run([sys.executable, "-m", "agileplus", "review", "003", "WP01", "--inline"], cwd=ROOT,
                            env=job_env(tmp_path / "cli", None, AGILEPLUS_SECRET_REVIEW_LEAK=SECRET),
                            capture_output=True, text=True, timeout=180)

    report = ReviewReport.objects.get(wp__code="WP01")
    assert "leak [" in report.text, review.stdout + review.stderr  # the agent's test ran, its output kept
    stored = every_stored_text()
    for form in (SECRET, base64.b64encode(SECRET.encode()).decode()[:-4], SECRET[::-1]):
        assert form not in report.text and form not in review.stdout + review.stderr and form not in stored
