"""Conflict prediction before dispatch: WPs that would touch the same files do not run in
parallel (serialize policy); disjoint ones do; pushed branches that conflict are flagged."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.cli import run_cli
from tests.support.farm import ROOT, import_target, intervals, job_env, make_target_repo, outbox_file, running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return max(a[0], b[0]) < min(a[1], b[1])


def test_wps_owning_the_same_file_run_one_after_the_other_and_disjoint_ones_in_parallel(tmp_path):
    runs = outbox_file(tmp_path, "runs.txt")
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": [], "WP03": []},
                            owned={"WP01": ["src/shared.py"], "WP02": ["src/shared.py"], "WP03": ["src/other.py"]},
                            behaviour=f"record:{runs},sleep:2,commit:1")
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))

    with running_workers(tmp_path, 3, broker_url=None):
        done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--all", "--wait",
                               "--actor", "human:alice"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=180)

    assert done.returncode == 0, done.stdout + done.stderr
    ran = intervals(runs)
    assert not overlap(ran["WP01"], ran["WP02"])
    assert overlap(ran["WP01"], ran["WP03"])


def test_status_flags_wps_whose_declared_paths_overlap(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []},
                            owned={"WP01": ["src/"], "WP02": ["src/api.py"]})
    import_target(repo)

    status = run_cli("status 003")

    assert "Predicted conflict: WP01 ↔ WP02 (owned_paths: src/)" in status.output


def test_pushed_branches_editing_the_same_lines_are_flagged_and_disjoint_ones_are_not(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": [], "WP03": []},
                            environment={"AGENT_BEHAVIOUR_WP01": "write:shared.txt",
                                         "AGENT_BEHAVIOUR_WP02": "write:shared.txt",
                                         "AGENT_BEHAVIOUR_WP03": "commit:1"})
    feature = import_target(repo)
    feature.work_packages.update(deliverables=[])
    for wp in ("WP01", "WP02", "WP03"):
        assert "for_review" in run_cli(f"implement 003 --wp {wp} --inline").output

    found = json.loads(run_cli("conflicts 003 --json").output)["conflicts"]

    assert found == [{"a": "WP01", "b": "WP02", "source": "merge_tree", "paths": ["shared.txt"]}]
