"""The target repository as most users have it: a normal clone with main checked out. git
refuses a push to a checked-out branch, so import refuses it with the exact fix, and a merge that
meets the refusal later says so (not a merge conflict)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.core.errors import ImportFailed, RepositoryUnavailable
from agileplus.features.importer import import_path
from agileplus.review.moves import move_wp
from tests.support.farm import ROOT, import_target, job_env, make_target_repo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
FIX = "config receive.denyCurrentBranch updateInstead"


def test_import_refuses_a_repository_with_main_checked_out_naming_the_command(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []})
    repo.git("config", "--unset", "receive.denyCurrentBranch")

    with pytest.raises(ImportFailed) as refused:
        import_target(repo)

    assert refused.value.fix.startswith(f"git -C {repo.path} {FIX}")


def test_import_accepts_the_repository_once_git_updates_the_checked_out_files(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []})  # the helper runs the fix

    assert import_target(repo).slug == "003-auth-system"


def test_a_merge_refused_by_a_checked_out_origin_names_the_fix_and_records_no_conflict(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="commit:1")
    feature = import_target(repo)
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"),
                  AGILEPLUS_WORKER_DIR=str(tmp_path / "worker"))
    subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--inline"], cwd=ROOT,
                   env=env, capture_output=True, text=True, timeout=180, check=True)
    repo.git("config", "--unset", "receive.denyCurrentBranch")  # changed after the import

    with pytest.raises(RepositoryUnavailable) as refused:
        move_wp(feature.work_packages.get(code="WP01"), "done", actor="human:alice")

    assert FIX in refused.value.fix
    assert not AuditEntry.objects.filter(feature=feature, transition__endswith="merge_conflict").exists()
    assert feature.work_packages.get(code="WP01").state == "for_review"


def test_a_bare_origin_imports_by_its_plain_path_as_by_its_file_url(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []})
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(origin)], check=True)

    (feature,) = import_path(str(origin), actor="human:alice")

    assert feature.slug == "003-auth-system" and feature.project.repo_url == str(origin)
