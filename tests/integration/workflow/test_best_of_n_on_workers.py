"""Best of N on real workers: the candidates run in parallel on two workers; once the first
passing one has waited its grace, the slow one still running is stopped, its work set aside."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.workflow.models import CandidateRound
from tests.support.farm import (
    ROOT,
    import_target,
    job_env,
    make_target_repo,
    running_workers,
    start_worker,
    stop,
    wait_ready,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_first_passing_candidate_wins_after_its_grace_and_the_slow_one_is_stopped(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, agent={"candidates": {"count": 2, "grace_seconds": 2}},
                            environment={"AGENT_BEHAVIOUR_C1": "commit:1", "AGENT_BEHAVIOUR_C2": "commit:1,sleep:300"})
    feature = import_target(repo)
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))

    with running_workers(tmp_path, 2, broker_url=None):
        queued = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01",
                                 "--no-wait"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert queued.returncode == 0, queued.stdout + queued.stderr
        rnd = wait_until(lambda: CandidateRound.objects.filter(wp__feature=feature, settled_at__isnull=False).first(),
                         timeout=120, what="the round decided and settled")

    cards = {c.index: c for c in rnd.candidates.select_related("job")}
    assert (rnd.state, rnd.winner_id) == ("chosen", cards[1].job_id)
    assert {cards[1].job.worker, cards[2].job.worker} == {"worker@w1", "worker@w2"}  # in parallel
    assert (cards[2].job.state, cards[2].outcome) == ("cancelled", "stopped")
    assert repo.has_branch("salvage/feat/003-auth-system-WP01-c2")  # its commit, set aside
    assert feature.work_packages.get(code="WP01").state in ("for_review", "done")


def test_a_candidate_lost_with_its_worker_is_retried_and_the_choice_is_made_once(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, agent={"candidates": {"count": 2, "quorum": "all"}},
                            environment={"AGENT_BEHAVIOUR_C1": "sleep_first:300,commit:1",
                                         "AGENT_BEHAVIOUR_C2": "commit:1"})
    feature = import_target(repo)
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))

    with running_workers(tmp_path, 2, broker_url=None) as procs:
        queued = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01",
                                 "--no-wait"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert queued.returncode == 0, queued.stdout + queued.stderr
        first = wait_until(lambda: DispatchJob.objects.filter(feature=feature, state="running",
                                                              result__candidate__index=1).first(),
                           timeout=60, what="candidate 1 running")
        holder = next(p for p in procs if first.worker == f"worker@{p.name}")
        holder.kill()  # kill -9 of its worker's process group, its agent with it
        spare = start_worker("w3", tmp_path / "w3", broker_url=None, broker_dir=tmp_path / "broker")
        try:
            wait_ready([spare])
            rnd = wait_until(lambda: CandidateRound.objects.filter(wp__feature=feature,
                                                                   settled_at__isnull=False).first(),
                             timeout=180, what="the round decided and settled")
        finally:
            stop([spare])

    retried = DispatchJob.objects.get(pk=first.pk)
    assert (retried.state, retried.attempt) == ("succeeded", 2)
    assert rnd.state == "chosen"
    transitions = list(AuditEntry.objects.filter(feature=feature).values_list("transition", flat=True))
    assert transitions.count("WP01:candidate_chosen") == 1
    assert transitions.count("WP01:doing->for_review") == 1
