"""`agileplus agents check`: run each installed agent CLI, with the exact command line its
adapter builds, against a built-in scripted model endpoint in a scratch repository, and say
whether the farm still understands it. Spends no tokens: the model is a script on loopback.

Per harness: found or not (and where), its ``--version``, the adapter's flags accepted (the
CLI reached its model instead of exiting on its arguments), and the stream understood: a
session id, tool calls, the scripted commit made in a linked worktree (the farm's layout), and
usage reported. Anything missing is drift, and the command exits non-zero.

Where the pinned CLIs live: ``tools/agent-clis`` (``npm ci`` there; ``pinned_binaries``).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harnesses.base import PINNED_PATHS, AgentEvent, HarnessError, RunSpec, cli_version, pinned_binary
from harnesses.endpoints import Say, ScriptedEndpoint, Turn, Write, commit_script, endpoint_for
from harnesses.git import init_one_commit_repo
from harnesses.process import AgentProcess
from harnesses.registry import adapter_names, get_adapter

# The wire protocol each harness's CLI speaks, where a scripted endpoint exists for it.
PROTOCOLS = {"claude-code": "anthropic", "codex": "openai_responses", "gemini": "gemini", "opencode": "anthropic",
             "aider": "openai_chat"}
# What each CLI's stream says besides usage and the commit (Aider prints no session or tool calls).
STREAM_PARTS = {"aider": ()}
DEFAULT_STREAM_PARTS = ("session", "tool_calls")
# The model each check names: Codex offers no tools to its default model when the endpoint
# does not know it (no model metadata), so the check runs a model it has metadata for.
CHECK_MODELS = {"codex": "gpt-5", "gemini": "gemini-2.5-flash", "opencode": "anthropic/claude-sonnet-4-5",
                "aider": "openai/gpt-4o"}
# Aider edits through text: the whole-file format is the one a scripted reply can give exactly.
CHECK_OPTIONS = {"aider": {"edit_format": "whole"}}
SCRATCH_KEY = "scripted-endpoint-no-tokens"
CHECK_MESSAGE = "feat(WP01): agents check"
CHECK_FILE = "agents-check.txt"
# How the CLIs refuse a command line (commander, clap, yargs); a usage banner only as a last resort.
REJECTED_ARGS = ("unknown option", "unexpected argument", "Unknown argument", "unrecognized", "invalid value")
USAGE_BANNER = "Usage:"


def pinned_binaries() -> dict[str, str]:
    """Harness → the pinned CLI installed under tools/agent-clis (only those present)."""
    return {name: path for name in PINNED_PATHS if (path := pinned_binary(name))}


def endpoint_environment(harness: str, endpoint: ScriptedEndpoint) -> dict[str, str]:
    """The worker environment that points ``harness``'s CLI at ``endpoint`` (its credential_env)."""
    if harness in ("claude-code", "opencode"):  # opencode through its anthropic provider
        return {"ANTHROPIC_BASE_URL": endpoint.base_url, "ANTHROPIC_API_KEY": SCRATCH_KEY}
    if harness == "codex":
        return {"OPENAI_BASE_URL": f"{endpoint.base_url}/v1", "OPENAI_API_KEY": SCRATCH_KEY}
    if harness == "gemini":
        return {"GOOGLE_GEMINI_BASE_URL": endpoint.base_url, "GEMINI_API_KEY": SCRATCH_KEY}
    if harness == "aider":
        return {"OPENAI_API_BASE": f"{endpoint.base_url}/v1", "OPENAI_API_KEY": SCRATCH_KEY}
    raise HarnessError(f"no scripted endpoint for harness '{harness}'")


def prepare_home(harness: str, home: Path) -> None:
    """What a CLI needs in a fresh HOME to run headless on an API key (a worker's real HOME is
    set up once the same way): Gemini CLI asks for an auth method and a trusted folder."""
    home.mkdir(parents=True, exist_ok=True)
    if harness == "gemini":
        (home / ".gemini").mkdir(exist_ok=True)
        (home / ".gemini" / "settings.json").write_text(json.dumps({
            "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
            "privacy": {"usageStatisticsEnabled": False}}))


# Not credentials: settings that keep a CLI from calling home during a check or a test.
QUIET_ENVIRONMENT = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
                     "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1",
                     "OPENCODE_DISABLE_LSP_DOWNLOAD": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}



@dataclass
class CheckResult:
    harness: str
    found: bool = False
    path: str | None = None
    version: str | None = None
    flags_accepted: bool | None = None
    session_id: str | None = None
    tool_calls: int = 0
    commits: int = 0
    usage: dict | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    skipped: str = ""  # why it was not run (no endpoint for its protocol)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.found and not self.problems and not self.skipped

    def as_dict(self) -> dict:
        return {"harness": self.harness, "ok": self.ok, "found": self.found, "path": self.path,
                "version": self.version, "flags_accepted": self.flags_accepted, "session_id": self.session_id,
                "tool_calls": self.tool_calls, "commits": self.commits, "usage": self.usage,
                "seconds": round(self.seconds, 1), "problems": self.problems, "skipped": self.skipped}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


def scratch_worktree(root: Path) -> Path:
    """A repository with one commit and a linked worktree on its own branch, as a worker has."""
    origin = init_one_commit_repo(root / "origin", name="agents check", email="agents-check@localhost",
                                  readme="scratch repository of `agileplus agents check`\n")
    worktree = root / "worktrees" / "check-WP01"
    git(origin, "worktree", "add", "-q", "-b", "feat/check-WP01", str(worktree))
    return worktree


def run_against_endpoint(harness: str, endpoint: ScriptedEndpoint, workdir: Path, *, binary: str | None = None,
                         options: dict | None = None, home: Path | None = None, timeout: float = 180,
                         resume_session: str | None = None, model: str | None = None,
                         forbidden_paths: list[str] | None = None,
                         ) -> tuple[int, list[AgentEvent], list[str], list[str]]:
    """Run ``harness``'s real CLI as the runner would, pointed at ``endpoint``: exit code,
    parsed events, stdout and stderr lines."""
    adapter = get_adapter(harness)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home or workdir.parent / "home"), "LANG": "C.UTF-8",
           **QUIET_ENVIRONMENT, **endpoint_environment(harness, endpoint)}
    prepare_home(harness, Path(env["HOME"]))
    spec = RunSpec(prompt=f"Write {CHECK_FILE} and commit it.", workdir=workdir, env=env,
                   options={**CHECK_OPTIONS.get(harness, {}), **({"binary": binary} if binary else {}),
                            **(options or {})},
                   timeout_seconds=int(timeout), resume_session=resume_session,
                   model=model or CHECK_MODELS.get(harness), forbidden_paths=list(forbidden_paths or []))
    invocation = adapter.build_command(spec)
    events: list[AgentEvent] = []
    stdout: list[str] = []
    stderr: list[str] = []

    def on_line(stream: str, text: str) -> None:
        if stream == "stdout":
            stdout.append(text)
            events.extend(adapter.parse_line(text))
        else:
            stderr.append(text)

    result = AgentProcess(invocation.argv, cwd=workdir, env={**env, **invocation.env},
                          stdin_text=invocation.stdin_text, timeout_seconds=timeout, grace_seconds=2).run(on_line)
    return result.exit_code, events, stdout, stderr


def check_harness(harness: str, *, binary: str | None = None, timeout: float = 180, options: dict | None = None,
                  model: str | None = None, forbidden_paths: list[str] | None = None) -> CheckResult:
    """Run ``harness`` against its scripted endpoint; ``options``/``model``/``forbidden_paths``
    as a feature's agent config would give them (so every flag the adapter can pass is tried)."""
    result = CheckResult(harness)
    adapter = get_adapter(harness)
    try:
        result.path = adapter.resolve_binary(RunSpec(prompt="", workdir=Path("."),
                                                     options={"binary": binary} if binary else {}))
    except HarnessError as exc:
        result.problems.append(str(exc))
        return result
    result.found = True
    try:
        result.version = cli_version(result.path, adapter.version_args)
    except (OSError, subprocess.SubprocessError) as exc:
        result.problems.append(f"`{result.path} --version` failed: {exc}")
    if harness not in PROTOCOLS:
        result.skipped = "no scripted endpoint speaks its wire protocol yet"
        return result
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"agileplus-check-{harness}-") as scratch:
        worktree = scratch_worktree(Path(scratch))
        with check_endpoint(harness) as endpoint:
            code, events, result.stdout, result.stderr = run_against_endpoint(
                harness, endpoint, worktree, binary=result.path, timeout=timeout, options=options, model=model,
                forbidden_paths=forbidden_paths)
            reached = bool(endpoint.agent_requests)
        commits = git(worktree, "log", "--format=%s", "main..HEAD").splitlines()
    result.seconds = time.monotonic() - started
    _judge(result, code, events, reached, commits)
    return result


def check_endpoint(harness: str, content: str = "checked by agileplus agents check\n") -> ScriptedEndpoint:
    """The scripted endpoint ``harness``'s CLI speaks, with the check's script: write a file and
    commit it (Aider commits by itself, with the message its commit-message request gets)."""
    if PROTOCOLS[harness] == "openai_chat":
        return endpoint_for("openai_chat", [Turn([Say("Writing the file."), Write(CHECK_FILE, content)])],
                            commit_message=CHECK_MESSAGE)
    return endpoint_for(PROTOCOLS[harness], commit_script(CHECK_FILE, content, CHECK_MESSAGE))


def _judge(result: CheckResult, code: int, events: list[AgentEvent], reached: bool, commits: list[str]) -> None:
    said = result.stderr + result.stdout
    rejected = [line for line in said if any(m in line for m in REJECTED_ARGS)] or [
        line for line in said if USAGE_BANNER in line]
    if code != 0 and (rejected or not reached):
        result.flags_accepted = False
        # no refusal message (opencode only prints its usage): the first thing it said
        detail = rejected[0] if rejected else (result.stderr[0] if result.stderr else f"exit {code}")
        result.problems.append(f"the CLI did not accept the adapter's command line: {detail.strip()[:300]}")
        return
    if not reached:  # it took the command line and ended well, without asking the model anything
        said_first = (result.stderr or result.stdout or [""])[0].strip()[:300]
        result.problems.append(f"the CLI exited {code} without calling the scripted model endpoint"
                               + (f": {said_first}" if said_first else " and said nothing"))
        return
    result.flags_accepted = True
    result.session_id = next((e.session_id for e in events if e.session_id), None)
    result.tool_calls = sum(1 for e in events if e.kind == "tool_use")
    result.commits = len(commits)
    usage = next((e.usage for e in reversed(events) if e.usage), None)
    result.usage = usage.as_dict() if usage else None
    if code != 0:
        result.problems.append(f"the CLI exited with {code}")
    parts = STREAM_PARTS.get(result.harness, DEFAULT_STREAM_PARTS)
    if "session" in parts and not result.session_id:
        result.problems.append("no session id in the stream")
    if "tool_calls" in parts and result.tool_calls < 2:
        result.problems.append(f"{result.tool_calls} tool calls understood, the script made 2")
    if commits != [CHECK_MESSAGE]:
        result.problems.append(f"expected the commit '{CHECK_MESSAGE}', found {commits or 'none'}")
    if not usage or usage.input_tokens <= 0:
        result.problems.append("no usage reported")
    if parts and not any(e.final for e in events):  # Aider's output has no final event
        result.problems.append("no final result event")


def check_harnesses(names: list[str] | None = None, *, use_pinned: bool = False) -> list[CheckResult]:
    """Check ``names`` (default: every registered harness except ``command``)."""
    pinned = pinned_binaries() if use_pinned else {}
    known = adapter_names()
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise HarnessError(f"unknown harness {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = names or [n for n in known if n != "command"]
    results = [check_harness(name, binary=pinned.get(name)) for name in chosen]
    for result in results:
        if not names and not result.found:  # not installed is not drift unless it was asked for
            result.skipped, result.problems = "; ".join(result.problems), []
    return results


def render(results: list[CheckResult]) -> list[str]:
    """The human report, one block per harness."""
    lines = []
    for r in results:
        status = "ok" if r.ok else ("skipped" if r.found and r.skipped and not r.problems else
                                    "not found" if not r.found else "DRIFT")
        lines.append(f"{r.harness}: {status}")
        if r.found:
            lines.append(f"  version: {r.version or 'unknown'}  ({r.path})")
        if r.skipped:
            lines.append(f"  not run: {r.skipped}")
        if r.flags_accepted is not None:
            lines.append(f"  flags accepted: {'yes' if r.flags_accepted else 'NO'}")
        if r.flags_accepted:
            usage = r.usage or {}
            says = STREAM_PARTS.get(r.harness, DEFAULT_STREAM_PARTS)
            session = r.session_id or ("MISSING" if "session" in says else "none (the CLI prints none)")
            lines.append(f"  stream: session {session}, {r.tool_calls} tool calls, "
                         f"{r.commits} commit(s), usage {usage.get('input_tokens', 0)} in / "
                         f"{usage.get('output_tokens', 0)} out, cost {usage.get('cost_usd') or 'not reported'}")
            lines.append(f"  time: {r.seconds:.1f}s")
        lines += [f"  problem: {p}" for p in r.problems]
    return lines


def as_json(results: list[CheckResult]) -> str:
    return json.dumps([r.as_dict() for r in results], indent=2)
