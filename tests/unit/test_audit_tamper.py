"""Tampering with the stored chain (raw SQL, as an attacker would) is found and named by id."""

import pytest
from django.db import connection

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.features.services import record_wp_entry
from tests.factories import make_feature_with_wps

pytestmark = pytest.mark.django_db

TABLE = AuditEntry._meta.db_table


@pytest.fixture
def feature():
    feature, (wp,) = make_feature_with_wps(1)
    for i in range(6):
        record_wp_entry(wp, actor="ci:automation", transition=f"WP01:note-{i + 1}", metadata={"n": i + 1})
    return feature


def _sql(statement, params):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _pk(feature, seq):
    return AuditEntry.objects.get(feature=feature, seq=seq).pk


def test_an_untouched_chain_verifies(feature):
    result = verify_chain(feature)
    assert result.ok and result.count == 6


def test_an_edited_field_is_named_as_changed(feature):
    _sql(f"UPDATE {TABLE} SET actor = %s WHERE id = %s", ["human:mallory", _pk(feature, 3)])
    problems = verify_chain(feature).problems
    assert [(p.entry_id, p.kind) for p in problems] == [(3, "changed")]


def test_an_edited_field_with_a_recomputed_hash_breaks_the_next_link(feature):
    _sql(f"UPDATE {TABLE} SET hash = %s WHERE id = %s", ["f" * 64, _pk(feature, 3)])
    kinds = {(p.entry_id, p.kind) for p in verify_chain(feature).problems}
    assert (3, "changed") in kinds and (4, "broken_link") in kinds


def test_a_deleted_row_is_named_by_the_missing_id(feature):
    _sql(f"DELETE FROM {TABLE} WHERE id = %s", [_pk(feature, 4)])
    problems = verify_chain(feature).problems
    assert [(p.entry_id, p.kind) for p in problems] == [(4, "deleted")]
    assert "id=4 is missing" in problems[0].detail


def test_two_swapped_rows_are_named(feature):
    columns = ["seq", "timestamp", "actor", "transition", "evidence_refs", "metadata", "prev_hash", "hash"]
    a, b = _pk(feature, 3), _pk(feature, 4)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(columns)} FROM {TABLE} WHERE id = %s", [a])
        row_a = cursor.fetchone()
        cursor.execute(f"SELECT {', '.join(columns)} FROM {TABLE} WHERE id = %s", [b])
        row_b = cursor.fetchone()
        assignments = ", ".join(f"{c} = %s" for c in columns)
        cursor.execute(f"UPDATE {TABLE} SET seq = 999, prev_hash = 'x', hash = 'y' WHERE id = %s", [a])
        cursor.execute(f"UPDATE {TABLE} SET {assignments} WHERE id = %s", [*row_a, b])
        cursor.execute(f"UPDATE {TABLE} SET {assignments} WHERE id = %s", [*row_b, a])
    problems = verify_chain(feature).problems
    assert [(p.entry_id, p.kind) for p in problems] == [(3, "reordered")]
    assert "after id=4" in problems[0].detail
