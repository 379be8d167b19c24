"""Tunables are read in agileplus/settings.py only: the environment is read elsewhere only where
it is not configuration, each place named here with the reason."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_CONFIGURATION = {
    # bootstrapping: which settings module to load
    "agileplus/asgi.py", "agileplus/wsgi.py", "agileplus/cli/main.py", "workers/celery.py",
    # the environment handed on to child processes (git, the farm's processes, the agent's allowed names,
    # the PATH an agent CLI is checked with)
    "harnesses/git_command.py", "agileplus/core/supervisor.py", "agileplus/core/secrets.py",
    "agileplus/core/redaction.py",
    "harnesses/check.py",
    # a worker's identity, set by `agileplus worker` for the pool children it starts after settings loaded
    "agileplus/dispatch/reaper.py", "agileplus/cli/commands_farm.py",
    "workers/lifecycle.py",
    # the harness layer has no Django: AGILEPLUS_<HARNESS>_BIN overrides an agent CLI's path,
    # AGILEPLUS_SANDBOX=off / AGILEPLUS_BWRAP choose the sandbox, PATH finds the harness's install
    "harnesses/base.py", "harnesses/sandbox_probe.py", "harnesses/sandbox.py",
    # harness credentials come from the worker's own environment, never from settings (which are
    # dumped by `diffsettings` and error pages): that is the point of them belonging to the worker;
    # and the extra sandbox mounts a test suite sets for its in-process runs after settings loaded
    "agileplus/dispatch/sandboxing.py",
}


def reads_environment(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in ("environ", "getenv", "environb"):
            return True
    return False


def test_only_settings_and_the_named_places_read_the_environment():
    readers = set()
    for package in ("agileplus", "workers", "harnesses"):
        for path in (ROOT / package).rglob("*.py"):
            if reads_environment(ast.parse(path.read_text())):
                readers.add(str(path.relative_to(ROOT)))
    assert readers - {"agileplus/settings.py"} <= NOT_CONFIGURATION, "read it in settings.py"


def test_every_variable_settings_reads_is_documented_in_operations():
    names = set()
    for node in ast.walk(ast.parse((ROOT / "agileplus/settings.py").read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and node.args[0].value.isupper():
            func = node.func
            from_environ = isinstance(func, ast.Attribute) and func.attr == "get" and \
                isinstance(func.value, ast.Attribute) and func.value.attr == "environ"
            if from_environ or (isinstance(func, ast.Name) and func.id.startswith("_env")):
                names.add(node.args[0].value)
    documented = (ROOT / "docs/operations.md").read_text()
    assert names, "no variable found: the scan is broken"
    assert sorted(n for n in names if f"`{n}`" not in documented) == []
