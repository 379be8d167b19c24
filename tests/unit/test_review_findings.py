"""What the review reports with no configured check (the example's config has none): deliverables
found among the WP's own changes, the test files it changed, and each FR of the spec with the
evidence that names it."""

from __future__ import annotations

from pathlib import Path

from agileplus.review.findings import (
    changed_tests_result,
    check_deliverables,
    compliance_result,
    function_length_result,
    requirements,
)

EXAMPLE_SPEC = (Path(__file__).resolve().parents[2] / "examples" / "003-auth-system" / "kitty-specs"
                / "003-auth-system" / "spec.md").read_text()


def tree(root: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return list(files)


def test_a_bare_deliverable_name_is_not_delivered_by_a_test_of_the_same_name(tmp_path):
    changed = tree(tmp_path, {"tests/login_handler.rs": "#[test]\n"})

    result = check_deliverables(tmp_path, ["login_handler.rs"], changed)

    assert not result.ok and result.lines[0] == "✗ login_handler.rs missing"


def test_a_bare_deliverable_name_is_found_where_the_wp_wrote_it(tmp_path):
    changed = tree(tmp_path, {"src/handlers/login_handler.rs": "fn a() {}\nfn b() {}\n"})

    assert check_deliverables(tmp_path, ["login_handler.rs"], changed).lines[0] == \
        "✓ src/handlers/login_handler.rs (2 lines)"


def test_tests_as_a_deliverable_needs_test_files_this_wp_changed_not_an_existing_folder(tmp_path):
    tree(tmp_path, {"tests/old_test.rs": "#[test]\n"})  # on main before the WP
    changed = tree(tmp_path, {"src/login.rs": "fn login() {}\n"})

    result = check_deliverables(tmp_path, ["tests"], changed)

    assert not result.ok and result.lines[0] == "✗ tests missing (no test file changed by this WP)"


def test_tests_as_a_deliverable_names_the_test_files_the_wp_changed(tmp_path):
    changed = tree(tmp_path, {"tests/login_test.rs": "#[test]\n", "src/login.rs": "fn login() {}\n"})

    assert check_deliverables(tmp_path, ["tests"], changed).lines[0] == "✓ tests: tests/login_test.rs"


def test_the_examples_spec_has_three_functional_requirements():
    assert [(fr.fr_id, fr.text) for fr in requirements(EXAMPLE_SPEC)] == [
        ("FR-1", "Users can log in with email and password"),
        ("FR-2", "JWT tokens are validated on subsequent requests"),
        ("FR-3", "Sessions persist across requests")]


def test_each_fr_is_listed_with_what_names_it_or_says_it_has_no_evidence():
    evidence = {"tests/login_test.rs": "// FR-1: login happy path", "commit 1a2b3c4": "feat(WP02): fr10 thing"}

    result = compliance_result(EXAMPLE_SPEC, "Login Endpoint", evidence)

    assert result.section == "Specification Compliance" and result.ok
    assert result.lines[0] == "✓ FR-1 Users can log in with email and password — evidence: tests/login_test.rs"
    assert result.lines[1].startswith("– FR-2 JWT tokens are validated on subsequent requests — no evidence yet")
    assert len(result.lines) == 3


def test_a_wp_that_names_its_frs_is_checked_against_those_only():
    result = compliance_result(EXAMPLE_SPEC, "Login Endpoint (FR-1, FR-3)", {})

    assert [line.split(" ")[1] for line in result.lines] == ["FR-1", "FR-3"]


def test_without_a_test_check_the_report_names_the_changed_test_files_and_that_none_ran():
    result = changed_tests_result(["src/login.rs", "tests/login_test.rs"])

    assert result.ok and result.lines == [
        "– 1 test file changed: tests/login_test.rs",
        "– Tests not run: no test check configured (review.checks: a command with a parser runs them, "
        "coverage_file adds coverage)"]


def test_a_long_function_is_reported_without_rejecting_the_wp(tmp_path):
    changed = tree(tmp_path, {"app.py": "def long():\n" + "    x = 1\n" * 60})

    result = function_length_result(tmp_path, changed)

    assert result.ok and result.lines == [
        "– Function length over the target in app.py:long (not a configured check: reported only) "
        "(max: 61 lines, target: 50)"]
