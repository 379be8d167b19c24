"""`implement 003 --all` drives a 3-layer DAG of 7 WPs to shipped with 3 real workers:
agent → governance → review → merge → unblock → dispatch, unattended."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.events.models import Event
from agileplus.features.models import Feature
from tests.support.farm import ROOT, import_target, intervals, job_env, make_target_repo, outbox_file, running_workers
from tests.support.services import require_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

DAG = {
    "WP01": [], "WP02": [], "WP03": [],
    "WP04": ["WP01", "WP02"], "WP05": ["WP02", "WP03"],
    "WP06": ["WP04"], "WP07": ["WP04", "WP05"],
}
LAYERS = [["WP01", "WP02", "WP03"], ["WP04", "WP05"], ["WP06", "WP07"]]


@pytest.fixture(params=["embedded", "redis"])
def broker(request) -> str | None:
    if request.param == "redis":
        return require_service("redis").rsplit("/", 1)[0] + "/8"
    return None


def diagnose(feature) -> str:
    """What happened, for a failure message: the audit trail and the jobs' timings."""
    entries = [f"{e.transition} {e.actor} {e.metadata}" for e in AuditEntry.objects.filter(feature=feature)]
    jobs = [str(j) for j in DispatchJob.objects.filter(feature=feature).values(
        "wp__code", "attempt", "worker", "state", "claimed_at", "started_at", "finished_at")]
    return "\n" + "\n".join(entries + jobs)


def test_a_three_layer_dag_ships_with_each_layer_running_in_parallel(tmp_path, broker):
    runs = outbox_file(tmp_path, "runs.txt")
    # Each agent stays until every agent of its layer has started (60 s at most): a layer the farm
    # runs in parallel overlaps however starved the machine; one it runs a WP at a time does not.
    repo = make_target_repo(tmp_path, wps=DAG, behaviour=f"record:{runs},meet:60,commit:1",
                            environment={"AGENT_MEET": ";".join(" ".join(layer) for layer in LAYERS)})
    feature = import_target(repo)
    first_event = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    env = job_env(tmp_path / "cli", broker, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))

    with running_workers(tmp_path, 3, broker_url=broker):
        done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--all", "--wait",
                               "--actor", "human:alice"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=240)

    assert done.returncode == 0, done.stdout + done.stderr + diagnose(feature)
    assert Feature.objects.get(pk=feature.pk).state == "shipped"
    assert {wp.state for wp in feature.work_packages.all()} == {"done"}
    ran = intervals(runs)
    for layer in LAYERS:
        assert max(ran[wp][0] for wp in layer) < min(ran[wp][1] for wp in layer), \
            f"{layer} did not overlap: {ran}" + diagnose(feature)
    for wp, deps in DAG.items():
        assert all(ran[d][1] < ran[wp][0] for d in deps), f"{wp} started before its dependencies ended"
    assert verify_chain(feature).ok
    assert {f"wp{i:02d}/file_1.txt" for i in range(1, 8)} <= set(
        repo.git("ls-tree", "-r", "--name-only", "main").splitlines())
    # Causal order in the outbox: a WP's done precedes its dependents' unblocked, which precede their start.
    events = list(Event.objects.filter(id__gt=first_event).order_by("id").values_list("id", "subject", "payload"))
    done_at = {s.split(".wp.")[1].split(".")[0]: i for i, s, p in events
               if s.endswith(".state.changed") and p.get("to") == "done"}
    unblocked_at = {s.split(".wp.")[1].split(".")[0]: i for i, s, _p in events if s.endswith(".unblocked")}
    doing_at = {s.split(".wp.")[1].split(".")[0]: i for i, s, p in events
                if s.endswith(".state.changed") and p.get("from") == "planned" and p.get("to") == "doing"}
    for wp, deps in DAG.items():
        if deps:
            assert max(done_at[d] for d in deps) < unblocked_at[wp] < doing_at[wp]
