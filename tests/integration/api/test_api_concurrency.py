"""Conflicting transitions of one WP, sent at once over HTTP to a real server: one wins, the
others get 409, and the audit chain stays whole (SQLite or PostgreSQL, as DATABASE_URL says)."""

from __future__ import annotations

import threading

import httpx
import pytest

from agileplus.api.services import create_api_token
from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from tests.factories import make_feature_with_wps
from tests.support.server import running_web

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 8


def race(url: str, path: str, bodies: list[dict]) -> list[httpx.Response]:
    keys = [create_api_token(f"racer-{i}", "human") for i in range(len(bodies))]
    barrier, responses = threading.Barrier(len(bodies)), [None] * len(bodies)

    def racer(i: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Token {keys[i]}"}, timeout=60) as http:
            http.get("/api/health")  # connect first, so the posts leave together
            barrier.wait()
            responses[i] = http.post(path, json=bodies[i])

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


@pytest.mark.parametrize(("body", "refusal"), [({"to": "doing"}, "illegal_transition"),
                                               ({"to": "doing", "expected_state": "planned"}, "stale_state")])
def test_simultaneous_planned_to_doing_one_200_the_rest_409_and_the_chain_verifies(body, refusal):
    feature, _ = make_feature_with_wps(2, chain=False)
    with running_web() as url:
        responses = race(url, f"/api/features/{feature.slug}/wps/WP01/transition", [body] * RACERS)

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (RACERS - 1), [r.text for r in responses]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {refusal}
    assert AuditEntry.objects.filter(feature=feature, transition="WP01:planned->doing").count() == 1
    assert verify_chain(feature).ok


def test_simultaneous_transitions_to_different_targets_leave_one_consistent_history():
    feature, _ = make_feature_with_wps(1)
    targets = ["doing", "blocked"] * (RACERS // 2)
    with running_web() as url:
        responses = race(url, f"/api/features/{feature.slug}/wps/WP01/transition",
                         [{"to": t, "expected_state": "planned"} for t in targets])

    winners = [r.json()["to"] for r in responses if r.status_code == 200]
    assert len(winners) == 1 and sorted(r.status_code for r in responses)[1:] == [409] * (RACERS - 1)
    assert feature.work_packages.get().state == winners[0]
    chain = verify_chain(feature)
    assert chain.ok, [str(p) for p in chain.problems]
