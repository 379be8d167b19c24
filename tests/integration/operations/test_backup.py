"""`agileplus backup FILE` / `agileplus restore FILE`: a farm restored into an empty database
passes `events audit-verify`, and the origin's git notes come back."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from django.db import connection

from agileplus.features.models import Project
from agileplus.features.services import transition_wp
from agileplus.operations import backup
from harnesses.git import git, init_one_commit_repo
from tests.factories import make_feature_with_wps
from tests.support.server import ROOT, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.database]


@pytest.fixture
def farm(tmp_path):
    """A feature whose WPs moved (audit entries, events) on a project whose origin has a git note."""
    origin = init_one_commit_repo(tmp_path / "origin", name="Ops", email="ops@localhost", readme="x\n")
    git("notes", "add", "-m", "reviewed-by: ci:automation", "HEAD", cwd=origin)
    feature, wps = make_feature_with_wps(3, state="planned")
    Project.objects.filter(pk=feature.project_id).update(repo_url=str(origin))
    for target in ("doing", "for_review", "done"):
        transition_wp(wps[0], target, actor="ci:automation" if target == "done" else "agent:codex")
    transition_wp(wps[1], "doing", actor="agent:codex")
    return feature, origin


@pytest.fixture
def empty_database(tmp_path):
    """The URL of a database with no tables, of this test run's engine."""
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    name = f"test_ap_restore_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    settings = connection.settings_dict
    yield f"postgres://{settings.get('USER') or 'postgres'}@{settings.get('HOST') or '127.0.0.1'}:" \
          f"{settings.get('PORT') or 5432}/{name}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def agileplus(database_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, capture_output=True, text=True,
                          env=subprocess_env(DATABASE_URL=database_url), timeout=120)


def test_a_restored_farm_passes_audit_verify(farm, empty_database, tmp_path):
    feature, _origin = farm
    backup.backup(tmp_path / "farm.tar.gz")
    restored = agileplus(empty_database, "restore", str(tmp_path / "farm.tar.gz"), "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["audit"][feature.slug]["ok"]
    verified = agileplus(empty_database, "events", "audit-verify", "--feature", feature.slug, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["entries"] == feature.audit_entries.count() > 0


def test_the_origins_notes_come_back_with_a_restore(farm, empty_database, tmp_path):
    _feature, origin = farm
    backup.backup(tmp_path / "farm.tar.gz")
    git("update-ref", "-d", "refs/notes/commits", cwd=origin)
    restored = agileplus(empty_database, "restore", str(tmp_path / "farm.tar.gz"))
    assert restored.returncode == 0, restored.stderr
    assert git("notes", "show", "HEAD", cwd=origin) == "reviewed-by: ci:automation"


def test_the_backup_file_is_readable_by_its_owner_only(farm, tmp_path):
    backup.backup(tmp_path / "farm.tar.gz")
    assert (tmp_path / "farm.tar.gz").stat().st_mode & 0o777 == 0o600


def test_a_restore_into_a_database_holding_a_farm_is_refused_naming_the_fix(farm, tmp_path):
    backup.backup(tmp_path / "farm.tar.gz")
    with pytest.raises(backup.DomainError) as refused:
        backup.restore(tmp_path / "farm.tar.gz")
    assert refused.value.field == "DATABASE_URL" and "--replace" in refused.value.fix


def test_a_file_that_is_no_backup_is_refused_naming_the_file(db, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    with pytest.raises(backup.DomainError) as refused:
        backup.restore(junk)
    assert refused.value.field == "FILE"
