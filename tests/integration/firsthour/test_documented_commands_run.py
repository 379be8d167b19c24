"""Every literal `agileplus …` example of README.md, docs/*.md and examples/README.md, run as a
newcomer would: a fresh data folder (no DATABASE_URL: the embedded SQLite and broker), the
example's repository, one real worker, the stand-in `claude` CLI on PATH. The README's first-hour
block runs first, in its order; then every other example not already run, in document order.

Processes that serve until stopped (`web`, `worker`, `up`, `mcp`, `--watch`, `--follow`,
`events tail`…) are only parsed (tests/unit/firsthour/test_documented_commands_parse.py), as are
synopses with placeholders. The repository is a copy of examples/003-auth-system made a git
repository with the README's two commands, its agent settings extended with what the stand-in
writes (STANDIN_FILE / STANDIN_ALSO / STANDIN_MESSAGE)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.support.docs import DocCommand, documented_commands, runs_as_written
from tests.support.server import ROOT
from tests.support.standins import path_with_standins

pytestmark = [pytest.mark.slow]

SERVING = {"web", "worker", "beat", "relay", "reaper", "up", "mcp"}
EXAMPLE = "examples/003-auth-system"


def serves_until_stopped(args: list[str]) -> bool:
    return args[0] in SERVING or "--watch" in args or "--follow" in args or args[:2] == ["events", "tail"]


def reaches_another_host(args: list[str]) -> bool:
    """An example that imports from GitHub/GitLab needs a network this test does not have: parsed only."""
    return any("://" in a or a.startswith("git@") for a in args)


def examples_to_run() -> list[DocCommand]:
    literal = [c for c in documented_commands() if runs_as_written(c)
               and not serves_until_stopped(shlex.split(c.text)[1:]) and not reaches_another_host(shlex.split(c.text))]
    first_hour = [c for c in literal if c.fenced and c.where.startswith("README.md:")]
    seen = {c.text for c in first_hour}
    ordered = list(first_hour)  # the walk-through as written, repeats included
    for command in literal:
        if command.text not in seen:
            seen.add(command.text)
            ordered.append(command)
    return ordered


def example_repository(tmp_path) -> str:
    origin = tmp_path / "auth-system"
    shutil.copytree(ROOT / EXAMPLE, origin)
    config_file = origin / ".kittify" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    # Where an agent puts WP02's deliverables: login_handler.rs among the handlers, and its tests.
    config["agent"]["environment"].update({"STANDIN_FILE": "src/handlers/login_handler.rs",
                                           "STANDIN_ALSO": "tests/login_handler_test.rs",
                                           "STANDIN_MESSAGE": "feat(WP02): implement login endpoint with JWT"})
    config_file.write_text(yaml.safe_dump(config))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=Alice", "-c", "user.email=alice@localhost", "commit", "-qm", "initial"],
                 ["config", "receive.denyCurrentBranch", "updateInstead"]):
        subprocess.run(["git", "-C", str(origin), *args], check=True, capture_output=True)
    return str(origin)


def newcomer_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "NATS_URL") and not k.startswith("AGILEPLUS_")}
    return {**env, "AGILEPLUS_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT),
            "PATH": path_with_standins(env.get("PATH")), "AGILEPLUS_ACTOR": "human:alice"}


def test_every_documented_example_runs_against_a_real_farm(tmp_path):
    env = newcomer_env(tmp_path)
    origin = example_repository(tmp_path)
    worker = None
    failures = []
    try:
        for command in examples_to_run():
            typed = command.text.replace(f"{EXAMPLE}", origin).replace(
                "path/to/kitty-specs/003-auth-system", f"{origin}/kitty-specs/003-auth-system")
            done = subprocess.run([sys.executable, "-m", "agileplus", *shlex.split(typed)[1:]], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=240)
            if done.returncode != 0 or "Traceback" in done.stderr:
                failures.append(f"{command} → exit {done.returncode}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
            if worker is None:  # the first command created the database; now the second terminal
                worker = subprocess.Popen([sys.executable, "-m", "agileplus", "worker", "--hostname", "w1",
                                           "--harnesses", "claude-code"], cwd=ROOT, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True)
                time.sleep(1)
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)

    assert failures == [], "\n\n".join(failures)
    status = json.loads(subprocess.run([sys.executable, "-m", "agileplus", "status", "003", "--json"], cwd=ROOT,
                                       env=env, capture_output=True, text=True, timeout=120, check=True).stdout)
    assert {wp["code"]: wp["state"] for wp in status["work_packages"]} == {
        "WP01": "done", "WP02": "done", "WP03": "planned"}
    # The origin has main checked out: the merge updated its files (receive.denyCurrentBranch updateInstead).
    assert (tmp_path / "auth-system" / "src" / "handlers" / "login_handler.rs").exists()
    assert (tmp_path / "auth-system" / "tests" / "login_handler_test.rs").exists()
