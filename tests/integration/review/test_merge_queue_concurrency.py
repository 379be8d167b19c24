"""Approvals arriving at once from several processes (each WP approved twice, by two of them):
one queue per repository, every WP merged exactly once, none lost."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.review.models import MergeQueueEntry
from tests.support.cli import run_cli
from tests.support.farm import CALC_PROJECT, PYTEST_CHECK, ROOT, import_target, make_target_repo
from tests.support.server import subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CODES = ["WP01", "WP02", "WP03", "WP04"]
PROJECT = CALC_PROJECT
REVIEW = {"checks": [{"name": "deliverables"}, {"name": "governance"}, {"name": "commit_convention"},
                     PYTEST_CHECK]}


def approve_all_at_once() -> list[subprocess.CompletedProcess]:
    """Two processes per WP, all started together."""
    procs = [subprocess.Popen([sys.executable, "-m", "agileplus", "move", "003", code, "--to", "done",
                               "--actor", "human:alice"], cwd=ROOT, env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for code in CODES for _ in range(2)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), p.stdout.read(), "") for p in procs]


def test_concurrent_approvals_merge_every_wp_exactly_once(tmp_path):
    repo = make_target_repo(tmp_path, wps={code: [] for code in CODES}, behaviour="commit:1", files=PROJECT,
                            review=REVIEW)
    feature = import_target(repo)
    for code in CODES:
        assert "for_review" in run_cli(f"implement 003 --wp {code} --inline").output

    results = approve_all_at_once()

    assert all(r.returncode == 0 for r in results), [r.stdout for r in results]
    assert {wp.state for wp in feature.work_packages.all()} == {"done"}
    merges = Counter(s.split("'")[1] for s in repo.git("log", "--merges", "--format=%s", "main").splitlines())
    assert merges == Counter({f"feat/003-auth-system-{code}": 1 for code in CODES})
    entries = MergeQueueEntry.objects.filter(feature=feature)
    assert sorted(entries.values_list("wp__code", "state")) == [(code, "merged") for code in CODES]
    moves = list(AuditEntry.objects.filter(transition="merge_queue:main_moved").order_by("seq"))
    history = repo.git("rev-list", "--first-parent", "--reverse", "main").splitlines()
    assert [sha for m in moves for sha in m.metadata["first_parent"]] == history[1:]  # each commit, once, audited
    assert moves[-1].metadata["candidate"] == history[-1]
    assert verify_chain(feature).ok


def test_approvals_from_several_worker_processes_share_one_queue(tmp_path):
    from tests.support.farm import job_env, running_workers

    repo = make_target_repo(tmp_path, wps={code: [] for code in CODES}, behaviour="commit:1", files=PROJECT,
                            review=REVIEW)
    feature = import_target(repo)
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))

    with running_workers(tmp_path, 3, broker_url=None):  # each reviews (auto mode) and approves as ci:automation
        done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--all", "--wait", "--actor",
                               "human:alice"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)

    assert {wp.state for wp in feature.work_packages.all()} == {"done"}, done.stdout + done.stderr
    merges = Counter(s.split("'")[1] for s in repo.git("log", "--merges", "--format=%s", "main").splitlines())
    assert merges == Counter({f"feat/003-auth-system-{code}": 1 for code in CODES})
    assert MergeQueueEntry.objects.filter(feature=feature, state="merged").count() == len(CODES)
    assert MergeQueueEntry.objects.filter(feature=feature).count() == len(CODES)
