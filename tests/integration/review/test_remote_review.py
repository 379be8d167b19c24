"""`agileplus review` against a remote farm: the API queues the review for a review worker, the
CLI follows the request and prints the same report screen, and a move to done through the merge
queue is followed the same way."""

from __future__ import annotations

import pytest

from agileplus.api.services import create_api_token
from tests.integration.api.test_remote_cli import remote
from tests.support.cli import run_cli
from tests.support.farm import import_target, make_target_repo, start_worker, stop
from tests.support.server import running_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_remote_review_and_move_run_on_a_worker_and_print_their_screens(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": ["WP01"]})
    feature = import_target(repo)
    assert "for_review" in run_cli("implement 003 --wp WP01 --inline").output
    token = create_api_token("erin", "human")
    broker = {"AGILEPLUS_BROKER_DIR": str(tmp_path / "broker")}
    worker = start_worker("w-review", tmp_path / "w-review", broker_url=None, broker_dir=tmp_path / "broker")
    try:
        with running_web(**broker) as url:
            reviewed = remote(url, token, "review", feature.slug, "WP01")
            moved = remote(url, token, "move", feature.slug, "WP01", "--to", "done")
    finally:
        stop([worker])

    assert reviewed.returncode == 0, reviewed.stderr
    assert reviewed.stdout.splitlines()[0] == "Reviewing WP01: Work package WP01"
    assert reviewed.stdout.splitlines()[-1] == "Result: APPROVED ✓"
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines() == ["WP01 moved to done", "Now unblocked: WP02"]
    assert repo.subjects()[0].startswith("Merge branch 'feat/003-auth-system-WP01'")
