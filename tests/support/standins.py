"""Running an adapter's command for real against the stand-in agent CLIs in ``tests/standins``:
a throwaway git repository to run in, PATH with the stand-ins first, and every stdout line
fed to ``parse_line`` the way the dispatch runner does."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harnesses.base import AgentEvent, HarnessAdapter, RunSpec
from harnesses.git import init_one_commit_repo
from harnesses.process import AgentProcess

STANDINS = Path(__file__).resolve().parents[1] / "standins"


def run_spec(workdir, **kwargs) -> RunSpec:
    """The run of WP01 an adapter is asked for in ``workdir`` (``kwargs``: other RunSpec fields)."""
    return RunSpec(prompt=kwargs.pop("prompt", "Implement WP01: add the login form."), workdir=workdir, **kwargs)


def value_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def path_with_standins(path: str | None = None) -> str:
    return os.pathsep.join([str(STANDINS), path if path is not None else os.environ.get("PATH", "")])


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def init_repo(path: Path) -> Path:
    """A git repository on ``main`` with one commit and its own committer identity."""
    return init_one_commit_repo(path, name="Stand-in", email="standin@localhost", readme="target\n")


def subjects(repo: Path) -> list[str]:
    return git(repo, "log", "--format=%s").splitlines()


def tracked(repo: Path) -> list[str]:
    return git(repo, "ls-files").splitlines()


@dataclass
class AgentRun:
    exit_code: int
    events: list[AgentEvent] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[AgentEvent]:
        return [e for e in self.events if e.kind == kind]

    @property
    def final(self) -> AgentEvent | None:
        return next((e for e in reversed(self.events) if e.final), None)

    @property
    def usage(self):
        """The last usage reported, as the runner keeps it."""
        return next((e.usage for e in reversed(self.events) if e.usage), None)


def run_adapter(adapter: HarnessAdapter, spec: RunSpec, *, env: dict[str, str] | None = None,
                timeout: float = 60) -> AgentRun:
    """Build the command, run it in ``spec.workdir`` as the runner does (its own process group,
    stdin fed, output line by line) and parse every stdout line."""
    invocation = adapter.build_command(spec)
    run_env = {**os.environ, **spec.env, **invocation.env, **(env or {})}
    run = AgentRun(exit_code=-1)

    def on_line(stream: str, text: str):
        if stream == "stdout":
            run.stdout.append(text)
            run.events.extend(adapter.parse_line(text))
        else:
            run.stderr.append(text)
        return None

    process = AgentProcess(invocation.argv, cwd=spec.workdir, env=run_env, stdin_text=invocation.stdin_text,
                           timeout_seconds=timeout, grace_seconds=1)
    run.exit_code = process.run(on_line).exit_code
    return run
