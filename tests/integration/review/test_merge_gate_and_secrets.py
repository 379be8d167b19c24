"""The gate runs on main merged with the branch, not on the agent's worktree; a diff that adds a
credential is blocked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.audit.models import AuditEntry
from tests.support.cli import run_cli
from tests.support.farm import CALC_PROJECT, PYTEST_CHECK, import_target, make_target_repo, outbox_dir

pytestmark = [pytest.mark.django_db(transaction=True)]

PY = sys.executable
PROJECT = CALC_PROJECT
RENAME = {  # WP01: add() becomes plus()
    "calc/core.py": "def plus(a, b):\n    return a + b\n",
    "tests/test_core.py": "from calc.core import plus\n\n\ndef test_plus():\n    assert plus(2, 3) == 5\n",
}
USES_OLD_NAME = {  # WP02: a new test that still calls add()
    "tests/test_more.py": "from calc.core import add\n\n\ndef test_add_negative():\n    assert add(-1, 1) == 0\n",
}
TESTS = PYTEST_CHECK


def write_change(root, name: str, files: dict[str, str]):
    folder = outbox_dir(root, name)  # the agent reads it from inside its sandbox
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    return folder


def test_a_branch_that_passes_alone_but_breaks_main_once_merged_is_rejected(tmp_path):
    rename, old_name = write_change(tmp_path, "wp01", RENAME), write_change(tmp_path, "wp02", USES_OLD_NAME)
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []}, files=PROJECT,
                            environment={"AGENT_BEHAVIOUR_WP01": f"apply:{rename}",
                                         "AGENT_BEHAVIOUR_WP02": f"apply:{old_name}"},
                            review={"checks": [TESTS, {"name": "governance"}]})
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    for wp in ("WP01", "WP02"):
        assert "for_review" in run_cli(f"implement 003 --wp {wp} --inline").output
    as_the_agent_left_it = repo.head("feat/003-auth-system-WP02")
    assert "APPROVED" in run_cli("review 003 WP01 --apply --inline").output  # main now has plus(), not add()
    alone = tmp_path / "wp02-alone"
    repo.git("worktree", "add", "-q", "--detach", str(alone), as_the_agent_left_it)
    passes_alone = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=alone,
                                  capture_output=True, text=True)
    assert passes_alone.returncode == 0, passes_alone.stdout

    review = run_cli("review 003 WP02 --apply --inline")

    assert "✗ Tests failing" in review.output and "Result: CHANGES REQUESTED ✗" in review.output
    assert feature.work_packages.get(code="WP02").state == "doing"
    assert "tests/test_more.py" not in repo.git("ls-tree", "-r", "--name-only", "main")


def test_a_diff_adding_an_aws_access_key_is_blocked(tmp_path):
    leak = write_change(tmp_path, "leak", {"wp01/settings.py": "AWS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE'\n"})
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour=f"apply:{leak}")
    feature = import_target(repo)
    main_before = repo.head()

    run_cli("implement 003 --wp WP01 --inline")

    assert feature.work_packages.get(code="WP01").state == "blocked"
    entry = AuditEntry.objects.filter(feature=feature).order_by("-seq").first()
    assert {"rule": "secret", "path": "wp01/settings.py"}.items() <= entry.evidence_refs[0].items()
    assert "AKIAIOSFODNN7EXAMPLE" not in str(entry.metadata)  # the finding names the line, not the value
    assert repo.head() == main_before


def test_ordinary_code_passes_the_secret_scan(tmp_path):
    code = write_change(tmp_path, "ok", {"wp01/config.py": "TOKEN_HEADER = 'Authorization'\npassword_min = 12\n"
                                                           "checksum = 'e3b0c44298fc1c149afbf4c8996fb924'\n"})
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour=f"apply:{code}")
    feature = import_target(repo)

    run_cli("implement 003 --wp WP01 --inline")

    assert feature.work_packages.get(code="WP01").state == "for_review"
