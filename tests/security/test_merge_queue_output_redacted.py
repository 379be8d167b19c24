"""The merge queue runs the agents' tests on a candidate (main + several branches) and stores the
failing output in the report an ejected WP goes back with. An agent-written test that passes in
review alone, but on the candidate finds a secret of the process running the queue and prints it
(plainly, base64, reversed) leaves no form of it in that report, the queue or anywhere else."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from agileplus.review.models import MergeQueueEntry, ReviewReport
from tests.security.test_review_output_redacted import LEAKY_TEST
from tests.support.cli import run_cli
from tests.support.farm import PYTEST_CHECK, ROOT, import_target, job_env, make_target_repo, outbox_dir
from tests.support.stored import every_stored_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "review-held-3f8a1c6e9b2d"
# Leaks (and fails) only once another WP's file is beside it: on the merge queue's candidate.
LEAKS_ON_CANDIDATE = LEAKY_TEST.replace("def test_leak():\n", "def test_leak():\n"
                                        "    import os\n    if not os.path.exists('wp01/file_1.txt'):\n"
                                        "        return\n")


def test_a_secret_printed_by_the_agents_tests_on_the_candidate_is_stored_nowhere(tmp_path):
    change = outbox_dir(tmp_path, "change")  # the agent reads it from inside its sandbox
    (change / "tests").mkdir(parents=True)
    (change / "tests" / "test_leak.py").write_text(LEAKS_ON_CANDIDATE)
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []}, review={"checks": [PYTEST_CHECK]},
                            environment={"AGENT_BEHAVIOUR_WP01": "commit:1", "AGENT_BEHAVIOUR_WP02": f"apply:{change}",
                                         "AGENT_BEHAVIOUR": "commit:1"},
                            files={"tests/test_ok.py": "def test_ok():\n    pass\n"})
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    for code in ("WP01", "WP02"):
        assert "for_review" in run_cli(f"implement 003 --wp {code} --inline").output
    env = job_env(tmp_path / "cli", None, AGILEPLUS_SECRET_REVIEW_LEAK=SECRET)

    moves = [subprocess.run([sys.executable, "-m", "agileplus", "move", "003", code, "--to", "done", "--actor",
                             "human:alice"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
             for code in ("WP01", "WP02")]

    assert MergeQueueEntry.objects.get(wp__code="WP02").state == "ejected", [m.stdout + m.stderr for m in moves]
    report = ReviewReport.objects.get(wp__code="WP02")
    assert "leak [" in report.text  # the agent's test ran on the candidate, its output kept
    stored = every_stored_text()
    output = "".join(m.stdout + m.stderr for m in moves)
    for form in (SECRET, base64.b64encode(SECRET.encode()).decode()[:-4], SECRET[::-1]):
        assert form not in report.text and form not in output and form not in stored
