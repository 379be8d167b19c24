"""Importing kitty-specs folders: the seed's feature, re-imports, and every kind of bad input."""

import shutil
from pathlib import Path

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.core.errors import ImportFailed
from agileplus.events.models import Event
from agileplus.features.import_limits import parse_estimate
from agileplus.features.importer import import_features, import_path
from agileplus.features.models import Feature, Project, WorkPackage
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "003-auth-system"
FEATURE_DIR = Path("kitty-specs") / "003-auth-system"


@pytest.fixture
def repo(tmp_path):
    target = tmp_path / "repo"
    shutil.copytree(EXAMPLE, target)
    return target


def _task(repo, name):
    return repo / FEATURE_DIR / "tasks" / name


def _db_snapshot():
    return (Project.objects.count(), Feature.objects.count(), WorkPackage.objects.count(),
            AuditEntry.objects.count(), Event.objects.count())


def test_the_example_imports_with_the_seed_states():
    (feature,) = import_path(EXAMPLE, actor="human:alice")
    states = dict(feature.work_packages.values_list("code", "state"))
    assert states == {"WP01": "done", "WP02": "planned", "WP03": "planned"}
    assert feature.state == "implementing"
    assert feature.project.name == "auth-demo"
    assert feature.constraints["max_file_size"] == 1000000
    assert feature.agent_config["environment"]["RUST_LOG"] == "debug"
    assert feature.constraints["commit_convention"] == "feat({wp}): <description>"


def test_import_walks_the_feature_through_its_first_states_with_one_audit_entry_each():
    (feature,) = import_path(EXAMPLE, actor="human:alice")
    first = list(feature.audit_entries.order_by("seq").values_list("seq", "actor", "transition")[:3])
    assert first == [(1, "human:alice", "created->specified"), (2, "human:alice", "specified->researched"),
                     (3, "human:alice", "researched->planned")]
    assert verify_chain(feature).ok


def test_the_status_screen_of_the_imported_example_shows_the_seed_lines():
    run_cli(f"feature import {EXAMPLE} --actor human:alice")
    result = run_cli("status 003")
    assert result.exit_code == 0
    out = result.output
    for line in ("Feature: 003-auth-system", "State: Implementing", "Deliverables: login_handler.rs, tests",
                 "Blocked by: WP01 (unblocked)", "Est. effort: 3 days", "Blocked by: WP02",
                 "Est. effort: 2 days", "Total WP progress: 1/3 (33%)", "Estimated completion: 5 days"):
        assert line in out
    lines = out.splitlines()
    assert any(line.startswith("WP01 User & Session Models") and line.endswith("████████████ done") for line in lines)
    assert any(line.startswith("WP02 Login Endpoint") and line.endswith("░░░░░░░░░░░░ planned (ready)")
               for line in lines)
    assert any(line.startswith("WP03 Session Middleware") and line.endswith("planned (blocked)") for line in lines)


def test_a_feature_folder_imports_alone(repo):
    (feature,) = import_path(repo / FEATURE_DIR, actor="human:alice")
    assert feature.slug == "003-auth-system"
    assert feature.work_packages.count() == 3


def test_reimport_updates_in_place_and_reports_a_lane_it_does_not_force(repo):
    import_path(repo, actor="human:alice")
    path = _task(repo, "WP02-login-endpoint.md")
    path.write_text(path.read_text().replace("lane: planned", "lane: done").replace("3 days", "4 days"))
    entries_before = AuditEntry.objects.count()
    report = import_features(repo, actor="human:alice")
    wp2 = WorkPackage.objects.get(code="WP02")
    assert wp2.state == "planned" and str(wp2.estimate_days) == "4.00"
    assert any("WP02" in n and "lane" in n for n in report.notes)
    assert AuditEntry.objects.count() == entries_before


def test_reimport_adds_a_new_wp_in_its_lane(repo):
    import_path(repo, actor="human:alice")
    _task(repo, "WP04-logout.md").write_text(
        "---\nwork_package_id: WP04\ntitle: Logout\ndependencies: [WP01]\nestimate: 4 hours\nlane: doing\n---\nbody\n"
    )
    import_path(repo, actor="human:alice")
    wp4 = WorkPackage.objects.get(code="WP04")
    assert wp4.state == "doing" and str(wp4.estimate_days) == "0.50"


def test_a_wp_without_deliverables_in_its_front_matter_takes_the_paths_its_plan_lists(repo):
    path = _task(repo, "WP02-login-endpoint.md")
    path.write_text(path.read_text().replace("deliverables:\n  - login_handler.rs\n  - tests\n", ""))

    import_path(repo, actor="human:alice")

    assert WorkPackage.objects.get(code="WP02").deliverables == [
        "src/handlers/login.rs", "src/handlers/refresh.rs", "tests/login_handler_test.rs"]


def test_deliverables_declared_empty_in_the_front_matter_stay_empty(repo):
    path = _task(repo, "WP02-login-endpoint.md")
    path.write_text(path.read_text().replace("deliverables:\n  - login_handler.rs\n  - tests\n",
                                             "deliverables: []\n"))

    import_path(repo, actor="human:alice")

    assert WorkPackage.objects.get(code="WP02").deliverables == []


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("WP01-user-session-models.md", "dependencies: []", "dependencies: [WP03]",
         "WP01-user-session-models.md:4: dependency cycle"),
        ("WP02-login-endpoint.md", "dependencies: [WP01]", "dependencies: [WP09]",
         "WP02-login-endpoint.md:4: WP02 depends on unknown work package WP09"),
        ("WP03-session-middleware.md", "work_package_id: WP03", "work_package_id: WP02",
         "duplicate work_package_id WP02"),
        ("WP02-login-endpoint.md", "title: Login Endpoint", "title: [Login Endpoint",
         "WP02-login-endpoint.md:4: invalid YAML"),
        ("WP02-login-endpoint.md", "estimate: 3 days", "estimate: soon", "estimate 'soon'"),
        ("WP02-login-endpoint.md", "lane: planned", "lane: shipping", "lane 'shipping'"),
    ],
    ids=["cycle", "unknown-dependency", "duplicate-id", "bad-yaml", "bad-estimate", "bad-lane"],
)
def test_bad_input_is_one_clear_error_naming_the_file_and_nothing_is_imported(repo, file, old, new, expected):
    path = _task(repo, file)
    path.write_text(path.read_text().replace(old, new))
    before = _db_snapshot()
    result = run_cli(f"feature import {repo} --actor human:alice")
    assert result.exit_code == 2
    assert expected in result.output
    assert _db_snapshot() == before


def test_a_missing_spec_is_named_and_nothing_is_imported(repo):
    (repo / FEATURE_DIR / "spec.md").unlink()
    before = _db_snapshot()
    with pytest.raises(ImportFailed, match=r"spec\.md: missing file"):
        import_path(repo, actor="human:alice")
    assert _db_snapshot() == before


def test_bad_config_yaml_is_named_with_its_line(repo):
    config = repo / ".kittify" / "config.yaml"
    config.write_text(config.read_text().replace("timeout_seconds: 3600", "timeout_seconds: soon"))
    with pytest.raises(ImportFailed, match=r"config\.yaml:5: agent\.timeout_seconds"):
        import_path(repo, actor="human:alice")


def test_a_lane_that_cannot_be_reached_rolls_the_whole_import_back(repo):
    path = _task(repo, "WP03-session-middleware.md")
    path.write_text(path.read_text().replace("lane: planned", "lane: doing"))
    before = _db_snapshot()
    with pytest.raises(ImportFailed, match="WP03-session-middleware.md:12: lane doing cannot be reached"):
        import_path(repo, actor="human:alice")
    assert _db_snapshot() == before


@pytest.mark.parametrize(("text", "days"), [("3 days", "3.00"), ("1 day", "1.00"), ("2d", "2.00"),
                                             ("4 hours", "0.50"), ("1 week", "5.00"), (2, "2")])
def test_estimates_are_read_as_days(text, days):
    assert str(parse_estimate(text)) == days
