"""A review asked for through the API runs the agent's code (its tests) on a review worker, never
in the web process: the web process holds the database, the tokens and the farm's secrets.

The agent's test is hostile and long enough to be watched from outside: while it runs, this test
finds it in the host's /proc (inside the sandbox's PID namespace its own view of its parents ends
at the sandbox) and reads its chain of parents and the names in its environment."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from agileplus.api.services import create_api_token
from tests.security.support import COMMIT, WP, hostile
from tests.support.farm import start_worker, stop
from tests.support.server import running_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MARK = "7.318204"  # the hostile test's `sleep` argument: how it is found in /proc
WEB_ONLY = "AGILEPLUS_SECRET_WEB_HELD"


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        chain.append(pid)
        pid = parent_of(pid)
    return chain


def find_process(argv: list[str], *, timeout: float) -> int:
    wanted = ("\0".join(argv) + "\0").encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if Path(entry.path, "cmdline").read_bytes() == wanted:
                        return int(entry.name)
                except OSError:
                    continue
        time.sleep(0.02)
    raise AssertionError(f"no process {argv} appeared within {timeout}s")


def environment_names(pid: int) -> set[str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return {item.split(b"=", 1)[0].decode() for item in raw.split(b"\0") if item}


def wait_final(http: httpx.Client, url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(url).json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} not done after {timeout}s: {body}")


def test_an_agent_test_run_by_an_api_review_runs_in_a_worker_not_the_web_process(tmp_path):
    check = {"name": "tests", "command": f"sleep {MARK} && echo '1 passed'", "parser": "pytest"}
    attack = hostile(tmp_path, WP + COMMIT, wps={"WP01": []}, review={"checks": [check]})
    assert attack.run("WP01").state == "succeeded"
    token = create_api_token("erin", "human")
    env = {"AGILEPLUS_DATA_DIR": str(attack.data_dir), "AGILEPLUS_BROKER_DIR": str(tmp_path / "broker")}
    web: list = []
    worker = start_worker("w-review", tmp_path / "w-review", broker_url=None, broker_dir=tmp_path / "broker")
    try:
        with running_web(started=web, **env, **{WEB_ONLY: "web-held-5d1e0c"}) as url:
            http = httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=30)
            asked = http.post(f"/api/features/{attack.feature.slug}/wps/WP01/review", json={})
            assert asked.status_code == 202, asked.text
            test_pid = find_process(["sleep", MARK], timeout=60)
            chain, names = ancestors(test_pid), environment_names(test_pid)
            done = wait_final(http, asked.json()["url"])
    finally:
        stop([worker])

    assert web[0].pid not in chain
    assert worker.proc.pid in chain  # the worker started the sandbox the agent's test ran in
    assert WEB_ONLY not in names and "DATABASE_URL" not in names and not any(n.startswith("AGILEPLUS_SECRET")
                                                                             for n in names)
    assert done["state"] == "done" and "w-review" in done["worker"]
    assert done["report"]["approved"] and "All tests pass (1/1)" in done["report"]["text"]
