"""events audit-verify / export-audit / list: the seed's lines, filters, and failures named by id."""

import json

import pytest
from django.db import connection

from agileplus.audit.models import AuditEntry
from agileplus.core.errors import DomainError
from agileplus.core.subjects import subject_matches
from agileplus.features.services import transition_wp
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


@pytest.fixture
def feature():
    feature, (wp1, wp2) = make_feature_with_wps(2)
    for target, actor in (("doing", "agent:claude-code"), ("for_review", "agent:claude-code"),
                          ("done", "ci:automation")):
        transition_wp(wp1, target, actor=actor)
    return feature


def test_audit_verify_prints_the_seed_lines_for_an_intact_chain(feature):
    result = run_cli(f"events audit-verify --feature {feature.slug}")
    n = feature.audit_entries.count()
    first, last = (feature.audit_entries.get(seq=s).pk for s in (1, n))
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"✓ Audit chain intact ({n} entries verified)",
        f"Hash coverage: WP01 planned (id=1, row {first}) → WP02 unblocked (id={n}, row {last})",
    ]


def test_audit_verify_names_each_problem_and_exits_1(feature):
    pk = AuditEntry.objects.get(feature=feature, seq=2).pk
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEntry._meta.db_table} SET transition = 'WP01:planned->done' WHERE id = %s", [pk])
    result = run_cli(f"events audit-verify --feature {feature.slug}")
    assert result.exit_code == 1
    assert "✗ Audit chain broken" in result.output
    assert f"entry id=2, row {pk}: changed" in result.output


def test_audit_verify_names_the_row_apart_from_the_position_when_features_share_the_table(feature):
    other, _ = make_feature_with_wps(1)
    transition_wp(other.work_packages.get(code="WP01"), "doing", actor="agent:claude-code")
    pk = AuditEntry.objects.get(feature=other, seq=2).pk
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEntry._meta.db_table} SET actor = 'agent:forged' WHERE id = %s", [pk])

    result = run_cli(f"events audit-verify --feature {other.slug}")

    assert pk != 2 and f"entry id=2, row {pk}: changed" in result.output


def test_export_audit_prints_one_json_line_per_entry_in_order(feature):
    lines = run_cli(f"events export-audit --feature {feature.slug}").output.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["id"] for e in entries] == list(range(1, len(entries) + 1))
    assert [e["row_id"] for e in entries] == list(feature.audit_entries.order_by("seq").values_list("pk", flat=True))
    assert entries[0]["prev_hash"] == "0" * 64 and entries[1]["prev_hash"] == entries[0]["hash"]
    assert entries[0]["transition"] == "WP01:planned->doing" and entries[0]["actor"] == "agent:claude-code"


def test_events_list_filters_by_subject_wildcards(feature):
    rows = json.loads(run_cli(f"events list --subject agileplus.feature.{feature.slug}.wp.*.unblocked --json").output)
    assert [r["subject"] for r in rows] == [f"agileplus.feature.{feature.slug}.wp.WP02.unblocked"]
    rows = json.loads(run_cli("events list --subject agileplus.feature.> --json").output)
    assert len(rows) == 5  # three WP01 changes, one feature change, one unblock


def test_events_list_pages_after_an_id(feature):
    rows = json.loads(run_cli("events list --limit 2 --json").output)
    rest = json.loads(run_cli(f"events list --after {rows[-1]['id']} --json").output)
    assert len(rows) == 2 and len(rest) == 3 and rest[0]["id"] > rows[-1]["id"]


def test_a_bad_subject_pattern_is_refused_with_exit_2():
    result = run_cli("events list --subject 'agileplus.>.wp'")
    assert result.exit_code == 2 and "last token" in result.output


@pytest.mark.parametrize(("pattern", "subject", "matches"), [
    ("agileplus.>", "agileplus.feature.x.wp.WP01.state.changed", True),
    ("agileplus.feature.*.state.changed", "agileplus.feature.x.state.changed", True),
    ("agileplus.feature.*.state.changed", "agileplus.feature.x.wp.WP01.state.changed", False),
    ("agileplus.agent.job.*.>", "agileplus.agent.job.j1", False),
    ("agileplus.agent.job.j1", "agileplus.agent.job.j1", True),
])
def test_subject_patterns_follow_nats_wildcards(pattern, subject, matches):
    assert subject_matches(pattern, subject) is matches


def test_a_wildcard_inside_a_token_is_refused():
    with pytest.raises(DomainError):
        subject_matches("agileplus.feat*", "agileplus.feature")
