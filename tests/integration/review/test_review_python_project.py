"""The automated review on a real small Python package (pytest + coverage.py), run on main
merged with the agent's branch."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from agileplus.features.models import Evidence
from agileplus.review.models import ReviewReport
from tests.support.cli import run_cli
from tests.support.farm import CALC_PROJECT, import_target, make_target_repo, outbox_dir

pytestmark = [pytest.mark.django_db(transaction=True)]

PY = sys.executable
PROJECT = CALC_PROJECT
MUL = "def mul(a: int, b: int) -> int:\n    return a * b\n"
MUL_TEST = "from calc.ops import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == {expected}\n"
UNTESTED = "".join(f"def f{i}(x):\n    if x > {i}:\n        return x - {i}\n    return x + {i}\n\n\n"
                   for i in range(20))
CHANGES = {
    "good": {"calc/ops.py": MUL, "tests/test_ops.py": MUL_TEST.format(expected=6)},
    "failing test": {"calc/ops.py": MUL, "tests/test_ops.py": MUL_TEST.format(expected=7)},
    "coverage drop": {"calc/ops.py": MUL + UNTESTED, "tests/test_ops.py": MUL_TEST.format(expected=6)},
}
REVIEW = {"checks": [
    {"name": "deliverables"},
    {"name": "tests", "parser": "pytest", "timeout": 120, "fr_ids": ["FR-001"],
     "command": f"{PY} -m coverage run --source=calc -m pytest -q -p no:cacheprovider tests; "
                f"status=$?; {PY} -m coverage json -q -o coverage.json; exit $status",
     "coverage_file": "coverage.json", "coverage_threshold": 80},
    {"name": "governance"},
    {"name": "commit_convention"},
]}


@pytest.fixture
def reviewed(tmp_path):
    def run(change: str, *, apply: bool = False):
        source = outbox_dir(tmp_path, "change")  # the agent reads it from inside its sandbox
        for name, text in CHANGES[change].items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_text(text)
        repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour=f"apply:{source}", files=PROJECT,
                                review=REVIEW)
        feature = import_target(repo)
        wp = feature.work_packages.get(code="WP01")
        wp.deliverables = ["calc/ops.py", "tests/test_ops.py"]
        wp.save(update_fields=["deliverables"])
        dispatched = run_cli("implement 003 --wp WP01 --inline")
        assert "for_review" in dispatched.output, dispatched.output
        result = run_cli(f"review 003 WP01 --inline{' --apply' if apply else ''}")
        return repo, feature, result
    return run


def test_a_good_change_is_approved_with_its_figures(reviewed):
    _repo, feature, result = reviewed("good")

    assert result.exit_code == 0, result.output
    assert "✓ All tests pass (2/2)" in result.output
    assert "✓ Test coverage: 100% (target: 80%)" in result.output
    assert "Result: APPROVED ✓" in result.output
    assert ReviewReport.objects.get(feature=feature).approved


def test_a_failing_test_requests_changes_naming_the_check(reviewed):
    _repo, feature, result = reviewed("failing test")

    assert result.exit_code != 0
    assert "✗ Tests failing: 1 of 2" in result.output
    assert "Result: CHANGES REQUESTED ✗" in result.output
    report = ReviewReport.objects.get(feature=feature)
    assert [c["name"] for c in report.checks if not c["ok"]] == ["tests"]


def test_coverage_below_the_threshold_requests_changes(reviewed):
    _repo, _feature, result = reviewed("coverage drop")

    assert "✓ All tests pass (2/2)" in result.output
    coverage = re.search(r"✗ Test coverage: (\d+)% \(target: 80%\)", result.output)
    assert coverage and int(coverage[1]) < 80
    assert "Result: CHANGES REQUESTED ✗" in result.output


def test_the_report_is_evidence_for_the_requirements_it_proves(reviewed):
    _repo, feature, _result = reviewed("good")

    evidence = Evidence.objects.get(feature=feature, fr_id="FR-001")
    assert evidence.kind == "review" and evidence.summary == "tests: pass"


def test_an_approved_review_applied_merges_the_branch_into_main(reviewed):
    repo, feature, result = reviewed("good", apply=True)

    assert feature.work_packages.get(code="WP01").state == "done", result.output
    assert (Path(repo.path) / "calc" / "ops.py").exists() or "calc/ops.py" in repo.git("ls-tree", "-r", "main")
    assert "feat(WP01): apply change" in repo.subjects("main")


def test_changes_requested_applied_sends_the_wp_back_to_doing(reviewed):
    _repo, feature, _result = reviewed("failing test", apply=True)

    assert feature.work_packages.get(code="WP01").state == "doing"
