"""Running one dispatch job on this worker, from claim to result.

claim → mirror + worktree → prompt → agent process (heartbeat, log, commits) →
push (and salvage) → finish. Every write names the attempt it holds (fencing).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from agileplus.api.services import mint_job_token, revoke_job_token
from agileplus.core.canonical import sha256_hex
from agileplus.core.errors import DomainError
from agileplus.core.text import counted
from agileplus.dispatch import services, sessions
from agileplus.dispatch.costs import allowance_for
from agileplus.dispatch.gateway import (
    GatewayPlan,
    billed_usage,
    cross_check,
    gateway_stop,
    plan_gateway,
    settings_files,
    wire_gateway,
)
from agileplus.dispatch.models import ACTIVITY_STREAM, SETUP_STREAM, TOOL_STREAM, AgentSession, DispatchJob, JobState
from agileplus.dispatch.prompt import PackagedPrompt, build_prompt
from agileplus.dispatch.sandboxing import (
    HarnessCredentials,
    denied_attempts,
    escape_attempt,
    harness_credentials,
    hidden_paths,
    job_sandbox,
    report_refused,
    start_egress,
)
from agileplus.dispatch.secrets import LogStream, agent_base_environment, redact, resolve_environment
from agileplus.dispatch.services import Claim, Outcome, StaleAttempt
from agileplus.dispatch.stream_policy import StreamPolicy, rate_limit_wait
from agileplus.review.governance import held_secret_violations
from agileplus.review.services import governance_for, run_test_checks
from harnesses import git as g
from harnesses.activity import activity_lines, relative
from harnesses.adapters.command import PROMPT_FILE_ENV
from harnesses.base import AgentEvent, HarnessAdapter, HarnessError, Invocation, LastingSetupError, RunSpec, cli_version
from harnesses.disk import DiskCap
from harnesses.process import JOB_MARK_ENV, AgentProcess, ProcessResult, StopReason, all_marked, reap_marked
from harnesses.registry import get_adapter
from harnesses.sandbox import SANDBOX_HOME, Limits, Sandbox, sandbox_status

log = logging.getLogger("agileplus.runner")
JOB_TOKEN_ENV, JOB_ID_ENV = "AGILEPLUS_TOKEN", "AGILEPLUS_JOB_ID"  # what the remote CLI / API client reads
LOG_FLUSH_LINES = 50
LOG_FLUSH_SECONDS = 0.2


LIMIT_REASONS = ("memory_limit", "disk_limit")  # a job stopped by one: recorded, its WP blocked with it


def worker_name() -> str:
    return os.environ.get("AGILEPLUS_WORKER_NAME") or socket.gethostname()


def worker_root(name: str | None = None) -> Path:
    return settings.WORKER_DATA_DIR / (name or worker_name())


@dataclass
class Workspace:
    """Where the agent works: its worktree on ``branch``, started from ``base``."""

    worktree: Path
    base: str
    branch: str
    main: str
    name: str  # the worktree's folder name under .worktrees/
    original: DispatchJob | None = None  # the job a replay repeats
    mirror: Path | None = None  # the worker's mirror: the only repository the worker runs git in
    refs_before: dict[str, str] = field(default_factory=dict)  # the agent repository's refs at the start


@dataclass
class Launch:
    """How the agent is started: prompt (and its file), command, environment, manifest."""

    prompt: PackagedPrompt
    prompt_file: Path
    mark: str  # JOB_MARK_ENV: finds every process the agent began
    env: dict[str, str]
    invocation: Invocation
    manifest: dict
    sandbox: Sandbox | None = None
    egress: object | None = None  # harnesses.egress.EgressProxy under agent.network: model
    resumed: AgentSession | None = None  # the stored session this run resumes


@dataclass
class Collected:
    """What the run left: the outcome after governance, and what reached origin."""

    outcome: Outcome
    salvaged: str | None = None
    pushed: bool = False
    files: list[str] = field(default_factory=list)
    head: str = ""
    ignored_refs: list[str] = field(default_factory=list)  # refs the agent moved besides its branch
    tests: dict | None = None  # the review's test checks in the worktree: {"passed", "failed", "total"}


class JobRun:
    """One claimed job on this worker; ``run`` takes it through the steps listed in ``_run``."""

    def __init__(self, claim: Claim):
        self.claim = claim
        self.job = DispatchJob.objects.select_related("feature__project", "wp").get(pk=claim.job_id)
        self.config = dict(self.job.feature.agent_config or {})
        self.secret_values: list[str] = []
        self.log = LogStream()  # lines said, to the next flush
        self.progress: dict = {}  # session_id, usage, current_activity: written with the log batch
        self.last_flush = time.monotonic()
        self.reported: set[str] = set()
        self.earlier: set[str] = set()  # of `reported`: made by an earlier attempt of this job
        self.fenced = False
        self.stop_heartbeat = threading.Event()
        self.egress = None
        self.gateway: GatewayPlan | None = None  # the job's model gateway (dispatch/gateway.py)
        self.allowance = allowance_for(self.job)
        self.sandbox_info: dict = {}
        self.capture: sessions.SessionCapture | None = None  # the CLI's session folder, stored at each beat
        self.pushed_head = ""  # the branch head last pushed while the agent runs
        self.denied: list[str] = []  # paths the agent's output says it was refused (denied_attempts)
        self.escapes: list[str] = []  # privileged operations the agent's output says were refused
        self.limit: dict = {}  # the limit (memory_limit, disk_limit) that stopped the agent, and why
        self.withheld = ""  # why the branch is not pushed: a commit carries a secret (withhold_secrets)
        self.workdir: Path | None = None  # the worktree, for activity lines relative to it
        self.last_said = ""  # the agent's last message: its final result repeats it

    @functools.cached_property
    def adapter(self) -> HarnessAdapter:
        # Looked up inside run(): an unknown harness is a setup failure, reported on the job.
        return get_adapter(self.job.harness)

    # --- log -------------------------------------------------------------------
    def say(self, text: str, stream: str = "agileplus", *, activity: bool = False) -> None:
        """One log line (``activity``: also the job's current activity), redacted when flushed."""
        self.log.add(timezone.now(), stream, text, activity=activity)
        if len(self.log) >= LOG_FLUSH_LINES or time.monotonic() - self.last_flush > LOG_FLUSH_SECONDS:
            self.flush(hold=True)

    def flush(self, *, hold: bool = False) -> None:
        """One write for the batch of log lines and one for the latest progress, not one per line:
        an agent printing without pause must not turn into a database write per line. Lines are
        redacted as a stream (a secret split across two lines is found in both); with ``hold`` an
        agent's last line waits briefly for the next."""
        taken = self.log.take(self.secret_values, hold=hold)
        lines = [(ts, stream, text) for ts, stream, text, _ in taken]
        activity = [text for _ts, _stream, text, is_activity in taken if is_activity]
        if activity:
            self.progress["current_activity"] = activity[-1]
        progress, self.progress = self.progress, {}
        try:
            if lines and not self.fenced:
                services.append_log(self.claim, lines)
            if progress and not self.fenced:
                services.update_progress(self.claim, **progress)
        except StaleAttempt:
            self.fenced = True
        # Timed from the end of the write: far from the database a write (5 round trips) outlasts
        # the interval, and timing from its start flushed every following line on its own.
        self.last_flush = time.monotonic()

    # --- heartbeat thread --------------------------------------------------------
    def _beat(self) -> None:
        interval = max(0.2, settings.JOB_LEASE_SECONDS / 3)
        try:
            while not self.stop_heartbeat.wait(interval):
                try:
                    held = services.heartbeat(self.claim)
                except DatabaseError as exc:  # a database restart or a busy SQLite: try again next beat
                    log.warning("heartbeat of %s failed: %s", self.claim.job_id, exc)
                    connection.close()
                    continue
                if not held:
                    self.fenced = True
                    return
                self.capture_session()
        finally:
            connection.close()

    def capture_session(self) -> None:
        """Store the CLI's session (id + files) if it changed; a failure waits for the next beat."""
        if self.capture is None:
            return
        try:
            self.capture.capture()
        except (DatabaseError, OSError) as exc:
            log.warning("session capture of %s failed: %s", self.claim.job_id, exc)

    # --- commits -------------------------------------------------------------------
    def scan_commits(self, worktree: Path, base: str, *, strict: bool = True) -> None:
        # The agent's repository is only ever fetched from (harnesses/git.py): commits are read in the mirror.
        try:
            g.fetch_agent_branch(self.mirror, worktree, self.branch)
            commits = g.commits_since(self.mirror, base, f"refs/heads/{self.branch}")
        except g.GitError:
            if strict:
                raise
            return  # during the run: the agent may be mid-operation; the final scan decides
        new = [commit for commit in commits if commit.sha not in self.reported]
        if new:
            self.withhold_secrets(base, new[-1].sha)
        for commit in new:
            self.reported.add(commit.sha)
            try:
                first_report = services.report_commit(self.claim, sha=commit.sha, message=commit.message,
                                                      files=commit.files)
            except StaleAttempt:
                self.fenced = True
                first_report = True
            if not first_report:  # an earlier attempt's commit, on the branch this attempt resumed
                self.earlier.add(commit.sha)
                continue
            # The subject of the message redacted whole: a secret split over its paragraphs is found.
            subject = redact(commit.message, self.secret_values).strip().splitlines()
            self.say(f"Commit: {subject[0] if subject else commit.sha[:7]}")
            self.flush()
        if commits and not strict and not self.withheld:
            self.push_progress(commits[-1].sha)

    def commits_said(self) -> str:
        """``2 commits``; a resumed attempt's own, then those of the attempts before it."""
        mine = len(self.reported - self.earlier)
        text = counted(mine, "commit") if mine or not self.earlier else "no new commit"
        return text + (f" (and {counted(len(self.earlier), 'commit')} from earlier attempts)" if self.earlier else "")

    def withhold_secrets(self, base: str, head: str) -> None:
        """A commit carrying a secret this worker holds (in its message or its lines, in any form
        ``redact`` knows) never leaves the worker: from the first one, nothing of the branch is
        pushed, and governance blocks the WP with the reason."""
        if self.withheld:
            return
        found = held_secret_violations(self.mirror, base, head, self.secret_values)
        if found:
            self.withheld = found[0].detail
            self.say(f"Not pushed to the origin: {self.withheld}")

    def push_progress(self, head: str) -> None:
        """While the agent runs, each new commit goes to the origin's WP branch: a next attempt on
        another worker (this one lost) resumes the session on the branch its transcript describes.
        Best effort: the push after the run decides."""
        if head == self.pushed_head or self.fenced:
            return
        try:
            g.push(self.mirror, [f"{self.branch}:refs/heads/{self.branch}"])
            self.pushed_head = head
        except g.GitError as exc:
            log.info("progress push of %s failed: %s", self.branch, exc)

    def run(self) -> str:
        # The lease is renewed from the claim to the final write: setup (fetch, worktree) and
        # the push/governance after the agent can outlast a short lease on a busy machine.
        heart = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{self.claim.job_id}")
        heart.start()
        try:
            return self._run()
        finally:
            self.stop_heartbeat.set()
            revoke_job_token(self.job.id, self.claim.attempt)  # the agent's per-job API token ends with the job
            if self.gateway is not None:  # no listener left open, the job's reservation released
                self.gateway.close()

    def _run(self) -> str:
        """The steps of one run, in order: prepare the workspace (mirror, worktree); resolve the
        environment and write the prompt; build the manifest; start the agent; stream its output
        under the stream policy; collect commits (salvage, push) and check governance; finish;
        reroute a rate-limited job."""
        workspace = self.prepare_workspace()
        launch = self.prepare_launch(workspace)
        policy = StreamPolicy.from_config(self.job.harness, self.config, self.allowance)
        before = self.adapter.session_usage(self.capture.folder) if launch.resumed and self.capture else None
        if before is not None:  # its figures will count the resumed session's earlier turns too
            policy.usage_before = {k: v for k, v in before.as_dict().items() if v is not None}
        proc = self.start_agent(workspace, launch, policy)
        result = self.stream(proc, workspace, launch, policy)
        outcome = outcome_of(result)
        if self.escapes and outcome.reason in ("", "agent_failed"):  # its commits stay, for a human to judge
            outcome = Outcome(JobState.FAILED, result.exit_code, "escape_refused",
                              f"the sandbox refused the agent {len(self.escapes)} privileged operation(s), "
                              f"first: {self.escapes[0]}")
        elif outcome.reason == "agent_failed" and policy.last_error:  # say why, in the CLI's words
            outcome.detail = f"{outcome.detail}: {policy.last_error[:500]}"
        collected = self.collect(workspace, outcome, result, policy.last_error)
        self.say(
            f"Agent {'finished' if collected.outcome.state == JobState.SUCCEEDED else 'failed'}: "
            f"exit {result.exit_code}, {self.commits_said()}, {counted(len(collected.files), 'file')} changed"
        )
        self.flush()
        if self.fenced:
            return "fenced"
        if collected.outcome.reason == "rate_limited" and self.park(collected.outcome, policy):
            return JobState.QUEUED  # this worker takes other work; the job comes back after the reset
        if collected.outcome.state == JobState.SUCCEEDED:
            collected.tests = self.count_tests(workspace)
        finished = self.finish(collected, result, policy.usage, model=policy.model or self.config.get("model") or "")
        if collected.outcome.reason == "rate_limited":
            self.reroute(finished)
        return collected.outcome.state

    # --- steps -----------------------------------------------------------------------
    def prepare_workspace(self) -> Workspace:
        """The project's mirror and this WP's worktree, on the original's base for a replay."""
        feature, wp = self.job.feature, self.job.wp
        root = worker_root(self.claim.worker)
        mirror = self.mirror = g.ensure_mirror(root, feature.project.repo_url)
        branch = self.branch = wp.branch_name
        main = feature.project.main_branch
        original = self._replayed_job()
        name = g.worktree_name(feature.slug, wp.code)
        worktree, base, start = g.create_worktree(mirror, root / ".worktrees", name, branch,
                                                  original.manifest["base_sha"] if original else g.origin_ref(main),
                                                  reset=original is not None)
        # The repository was just made by the worker (init, then the branch at start): its only ref.
        return Workspace(worktree=worktree, base=base, branch=branch, main=main, name=name, original=original,
                         mirror=mirror, refs_before={f"refs/heads/{branch}": start})

    def prepare_launch(self, workspace: Workspace) -> Launch:
        """Environment (secrets resolved, remembered for redaction), prompt file, command, manifest."""
        job, feature = self.job, self.job.feature
        resolved = resolve_environment(self.config.get("environment") or {})
        job_token = mint_job_token(job)  # acts on this job and its WP only, this attempt; revoked in run()
        self.secret_values = [*resolved.secret_values, job_token]
        previous = sessions.previous_session(job) if not workspace.original else None
        resumed = self.prepare_session(workspace, previous)
        prompt = self.prepare_prompt(workspace, resolved.names, previous, resumed)
        prompt_dir = Path(tempfile.mkdtemp(prefix=f"agileplus-{job.id}-"))
        prompt_file = prompt_dir / "prompt.md"
        prompt_file.write_text(prompt.text)
        mark = f"{farm_id()}:{job.id}.{self.claim.attempt}"
        # The worker's own model endpoint and key for this harness, never the repository's (they come
        # last: a repository must not point the worker's key at another host); never stored.
        credentials = harness_credentials(job.harness)
        self.secret_values = self.secret_values + credentials.secret_values()  # redacted like injected secrets
        credentials = self.start_gateway(credentials)  # the agent gets the gateway and a placeholder instead
        env = {**agent_base_environment(), **resolved.env, **credentials.env, PROMPT_FILE_ENV: str(prompt_file),
               JOB_MARK_ENV: mark, JOB_TOKEN_ENV: job_token, JOB_ID_ENV: job.id}
        spec = RunSpec(prompt=prompt.text, workdir=workspace.worktree, env=env, model=self.config.get("model"),
                       timeout_seconds=job.timeout_seconds,
                       allowed_paths=list((feature.constraints or {}).get("allowed_paths") or []),
                       forbidden_paths=list((feature.constraints or {}).get("forbidden_paths") or []),
                       options={k: v for k, v in self.config.items() if k not in ("environment",)},
                       resume_session=resumed.session_id if resumed else None,
                       session_dir=self.session_dir(workspace))
        invocation = self.adapter.build_command(spec)
        env.update(invocation.env)
        sandbox = job_sandbox(harness_binary=invocation.argv[0] if invocation.argv else None,
                              worktree=workspace.worktree, mirror=workspace.mirror, prompt_dir=prompt_dir,
                              config=self.config, credentials=credentials, path_env=env.get("PATH"))
        if self.capture is not None:
            sandbox.spec.home_folders[self.adapter.session_folder(workspace.worktree)] = self.capture.folder
        self.egress = start_egress(sandbox, harness=job.harness, config=self.config, env=env, gateway=self.gateway)
        self.sandbox_info = sandbox.describe()
        manifest = build_manifest(job, self.adapter, invocation, prompt.text, workspace, resolved.names,
                                  sandbox=self.sandbox_info)
        if resumed:
            manifest["resumed_from_session"] = resumed.session_id
        return Launch(prompt=prompt, prompt_file=prompt_file, mark=mark, env=env, invocation=invocation,
                      manifest=manifest, sandbox=sandbox, egress=self.egress, resumed=resumed)

    def start_gateway(self, credentials: HarnessCredentials) -> HarnessCredentials:
        """The job's model gateway for the providers the worker holds keys of: each call is
        checked against the budgets, metered and written to the ledger as it ends. Returns the
        credentials as the agent gets them (the gateway's URL and a placeholder; no key files)."""
        network = self.config.get("network", "model")
        sandboxed = sandbox_status()["mode"] == "bwrap" and network == "model"
        self.gateway = plan = plan_gateway(credentials.env, sandboxed=sandboxed)
        if plan is None:
            return credentials
        job, attempt, worker = self.job, self.claim.attempt, self.claim.worker
        wire_gateway(plan, job, attempt, worker, self.config)
        self.say(f"Model gateway: {', '.join(sorted(plan.routes))} through the worker "
                 f"(accounts {', '.join(plan.accounts)}); the agent holds a per-job placeholder key")
        return HarnessCredentials(env=plan.agent_env, files=settings_files(credentials.files),
                                  missing=credentials.missing)

    def stop_gateway(self) -> None:
        """No new calls; those in flight (an agent killed mid-answer) are read to their end and billed."""
        if self.gateway is not None:
            self.gateway.gateway.stop()
            if not self.gateway.gateway.drain(settings.MODEL_GATEWAY_DRAIN_SECONDS):
                self.say(f"Model gateway: calls still in flight after {settings.MODEL_GATEWAY_DRAIN_SECONDS:g}s "
                         "are billed when they end")

    def prepare_session(self, workspace: Workspace, previous: AgentSession | None) -> AgentSession | None:
        """Under the sandbox, for a CLI that keeps its session in a folder: that folder is this
        attempt's host folder (captured at each heartbeat). The previous session, when this CLI
        resumes and its files were kept, is restored there: returned, it is the one to resume."""
        folder = self.adapter.session_folder(workspace.worktree)
        if folder is None or sandbox_status()["mode"] != "bwrap":
            return None
        host = worker_root(self.claim.worker) / "sessions" / f"{self.job.id}.{self.claim.attempt}"
        shutil.rmtree(host, ignore_errors=True)
        host.mkdir(parents=True)
        self.capture = sessions.SessionCapture(self.claim, self.job.harness, host, self.adapter.session_databases)
        if previous is None or not self.adapter.resumes or not previous.files:
            return None
        restored = self.capture.restore(previous)
        try:
            self.adapter.adopt_session(self.capture.folder, workspace.worktree, previous.session_id)
        except HarnessError as exc:  # a store that cannot be moved: a fresh session, told what happened
            self.say(f"Not resuming session {previous.session_id}: {exc}")
            self.capture.remove()
            self.capture.folder.mkdir(parents=True)
            return None
        self.capture.session_id = previous.session_id  # the same session continues
        self.say(f"Resuming session {previous.session_id} of attempt {previous.attempt} on "
                 f"{previous.worker or 'another worker'} ({len(restored)} session files restored)")
        return previous

    def session_dir(self, workspace: Workspace) -> str | None:
        """The session folder as the agent sees it, bound into the sandbox's HOME; None when
        this attempt keeps no session folder."""
        if self.capture is None:
            return None
        return f"{SANDBOX_HOME}/{self.adapter.session_folder(workspace.worktree)}"

    def prepare_prompt(self, workspace: Workspace, environment_names: list[str],
                       previous: AgentSession | None = None, resumed: AgentSession | None = None) -> PackagedPrompt:
        """A replay runs the original's exact prompt on the original's base; a resumed session is
        told what happened (and the job's notes: a review's findings); else a fresh prompt, with
        the previous session's last log lines when it could not be resumed."""
        job, original = self.job, workspace.original
        notes = list((job.result or {}).get("notes") or [])
        if original:
            self.say(f"Replaying {original.id} (manifest {original.manifest.get('hash', '')[:12]})")
            return PackagedPrompt(original.prompt, dict(original.prompt_sizes or {}), len(job.wp.deliverables or []))
        if resumed:
            text = sessions.resume_prompt(resumed, job, notes)
            return PackagedPrompt(text, {"RESUME": len(text.encode())}, len(job.wp.deliverables or []))
        if previous:
            notes += sessions.log_summary(previous)
        return build_prompt(job.feature, job.wp, config=self.config, environment_names=environment_names,
                            base_commit=workspace.base, notes=notes, timeout_seconds=job.timeout_seconds)

    def start_agent(self, workspace: Workspace, launch: Launch, policy: StreamPolicy) -> AgentProcess:
        """Start the agent process and record the run (pid, base, prompt, manifest) on the job."""
        job, feature, wp = self.job, self.job.feature, self.job.wp
        proc = AgentProcess(launch.invocation.argv, cwd=workspace.worktree, env=launch.env,
                            stdin_text=launch.invocation.stdin_text, timeout_seconds=job.timeout_seconds,
                            grace_seconds=settings.AGENT_KILL_GRACE_SECONDS, idle_seconds=policy.idle_seconds,
                            warning_seconds=float(self.config.get("timeout_warning_seconds",
                                                                  settings.AGENT_TIMEOUT_WARNING_SECONDS)),
                            sandbox=launch.sandbox.open() if launch.sandbox else None)
        # The `implement` screen's preamble: its own stream, so `agileplus logs` starts, as the
        # example's does, at the session (`jobs show --log` prints every stream).
        self.say("Workspace setup:", SETUP_STREAM)
        self.say(f"  Worktree: .worktrees/{workspace.name}", SETUP_STREAM)
        self.say(f"  Branch: {workspace.branch}", SETUP_STREAM)
        self.say(f"  Base commit: {workspace.base[:7]} ({workspace.main})", SETUP_STREAM)
        if launch.sandbox:
            self.say(f"  Sandbox: {launch.sandbox.mode}, network {launch.sandbox.spec.network}", SETUP_STREAM)
        self.say("Prompt prepared:", SETUP_STREAM)
        for line in launch.prompt.summary_lines(feature.slug, wp.code):
            self.say(f"  {line}", SETUP_STREAM)
        self.disk = DiskCap(workspace.worktree, (launch.sandbox.spec.limits if launch.sandbox
                                                 else Limits.from_config(self.config.get("limits"))).disk_bytes)
        pid = proc.start()
        if launch.sandbox:  # now with its cgroups: what bounds its memory, as made
            self.sandbox_info = launch.sandbox.describe()
        services.start_running(self.claim, pid=pid, base_commit=workspace.base, branch=workspace.branch,
                               worktree=str(workspace.worktree), prompt=launch.prompt.text,
                               prompt_sizes=launch.prompt.sections, manifest=launch.manifest,
                               session_id=job.id, current_activity="starting")
        # The example's words; the pid is on the job and in the `started` event.
        self.say("Agent session started" + (f" (attempt {self.claim.attempt})" if self.claim.attempt > 1 else ""))
        return proc

    def stream(self, proc: AgentProcess, workspace: Workspace, launch: Launch, policy: StreamPolicy) -> ProcessResult:
        """Read the agent's output to its end or a stop; then end every process it began."""
        self.workdir = workspace.worktree
        try:
            result = proc.run(lambda stream, text: self.on_line(policy, stream, text),
                              lambda: self.tick(workspace, launch.sandbox), on_stop=lambda t: self.say(t),
                              on_warning=self.warn)
            if result.stopped is None:  # what it wrote or allocated since the last tick counts too
                result.stopped = self.over_limit(launch.sandbox)
            if result.stopped is None:  # it ended before a tick saw its gateway's refusal or parked account
                result.stopped = gateway_stop(self.gateway)
            if result.stopped is not None and result.stopped.kind in LIMIT_REASONS:
                self.record_limit(result.stopped)
            return result
        finally:
            reap_marked(launch.mark)
            if launch.sandbox:
                launch.sandbox.close()
            if launch.egress is not None:
                launch.egress.stop()
                report_refused(self, launch.egress)
            self.stop_gateway()
            launch.prompt_file.unlink(missing_ok=True)
            launch.prompt_file.parent.rmdir()
            if self.capture is not None:  # the session as the agent left it, then its host folder goes
                self.capture_session()
                self.capture.remove()

    def on_line(self, policy: StreamPolicy, stream: str, text: str) -> StopReason | None:
        """Log and report one output line; the policy decides whether it stops the agent."""
        stop = None
        for event in self.adapter.parse_line(text) if stream == "stdout" else []:
            if event.session_id:
                self.progress["session_id"] = event.session_id
                if self.capture is not None:
                    self.capture.session_id = event.session_id
            stop = policy.observe(event) or stop
            if event.model and policy.usage.get("model") != event.model:  # what the CLI says it runs
                policy.usage["model"] = event.model
                services.update_progress(self.claim, usage=dict(policy.usage))
            if event.usage:
                self.progress["usage"] = dict(policy.usage)  # the ledger is live (to the next flush)
            self.record(event)
        if stream == "stderr":
            self.say(text, "stderr")
        if self.sandbox_info.get("mode") not in (None, "off"):
            self.note_denied(text)
            self.note_escape(text)
        return stop

    def note_escape(self, text: str) -> None:
        """A privileged operation the agent's output says the sandbox refused (mount, remount,
        open_by_handle_at, ptrace, mknod, raw socket…): a log line, an ``escape_refused`` event,
        the job's ``refused_escapes``; the job then fails with that reason (its WP blocked)."""
        if not escape_attempt(text) or len(self.escapes) >= 20:
            return
        line = text[:300]
        self.escapes.append(line)
        self.say(f"Sandbox: refused a privileged operation the agent tried: {line}")
        services.record_refusal(self.claim, "escape_refused", "escape_refused", line)

    def record(self, event: AgentEvent) -> None:
        """An event in the log: a tool use as its readable activity (and its raw line for `logs
        --raw`); anything else as the adapter wrote it, the final result once, not again after
        the message it repeats."""
        readable = activity_lines(event, self.workdir)
        target = (event.tool_input or {}).get("target") if event.tool == "denied" else None
        if target and target not in self.denied and len(self.denied) < 100:
            self.denied.append(relative(target, self.workdir))  # refused by the CLI's own permission rules
        if readable is None:
            if not event.text or (event.kind == "result" and event.text == self.last_said):
                return
            self.last_said = event.text
            self.say(event.text, "agent", activity=event.kind != "result")
            return
        if event.text:
            self.say(event.text, TOOL_STREAM)
        for line in readable:
            self.say(line, ACTIVITY_STREAM, activity=True)

    def note_denied(self, text: str) -> None:
        """A path the agent says it could not reach (hidden, or read-only): a log line, and the
        job's ``denied_paths``."""
        for path in denied_attempts(text, hidden_paths()):
            if path not in self.denied and len(self.denied) < 100:
                self.denied.append(path)
                self.say(f"Sandbox: the agent was refused {path} (hidden from agents, or read-only)")

    def warn(self, seconds_left: float) -> None:
        """The timeout's warning step: a log line and an event, before SIGTERM."""
        self.say(f"Warning: agent session timeout in {seconds_left:.0f} seconds "
                 f"(timeout {self.job.timeout_seconds} seconds); then SIGTERM, "
                 f"{settings.AGENT_KILL_GRACE_SECONDS:g}s grace, SIGKILL")
        self.flush()
        services.record_timeout_warning(self.claim, seconds_left)

    def tick(self, workspace: Workspace, sandbox: Sandbox | None = None) -> StopReason | None:
        """Between lines: flush the log, report new commits and refused connections, notice fencing and cancels."""
        report_refused(self, self.egress)
        if (stop := gateway_stop(self.gateway)) is not None:  # refused for the budget, or its account parked
            return stop
        self.flush(hold=True)
        self.scan_commits(workspace.worktree, workspace.base, strict=False)
        if self.fenced:
            return StopReason("fenced", "this worker no longer holds the job")
        if services.cancel_requested(self.claim):
            return StopReason("cancelled", "cancel requested")
        return self.over_limit(sandbox)

    def over_limit(self, sandbox: Sandbox | None) -> StopReason | None:
        """The job's memory (its cgroup: every process and its tmpfs together) or disk (its
        repository's growth) over its limit: the reason to stop it."""
        over = sandbox.over_memory() if sandbox is not None else None
        if over:
            return StopReason("memory_limit", over)
        over = self.disk.over()
        return StopReason("disk_limit", over) if over else None

    def record_limit(self, stopped: StopReason) -> None:
        """A job stopped by a limit: a log line, an event and the job's result say which and why
        (the WP is then blocked with that reason, its partial commits kept)."""
        self.say(f"Limit: {stopped.kind}: {stopped.detail}")
        self.limit = {"reason": stopped.kind, "detail": stopped.detail}
        services.record_refusal(self.claim, "limit_exceeded", stopped.kind, stopped.detail)

    def collect(self, workspace: Workspace, outcome: Outcome, result: ProcessResult, last_error: str = "") -> Collected:
        """The final commit scan, salvage of uncommitted work, push, and governance on success.
        A run that ends without a commit has nothing to review: it fails, saying why."""
        worktree, base, mirror, branch = workspace.worktree, workspace.base, workspace.mirror, workspace.branch
        try:
            self.scan_commits(worktree, base)
            ignored_refs = self._foreign_refs(worktree, branch, workspace.refs_before)
            try:
                salvaged = g.salvage(mirror, worktree, branch, f"refs/agileplus/salvage/{self.job.id}",
                                     leave_out=self.adapter.scratch_paths)
            except g.GitError as exc:  # e.g. a committed tree entry named '..': governance below names it
                self.say(f"Uncommitted work not salvaged: {exc}")
                salvaged = None
            pushed = not self.withheld and self._push(mirror, branch, salvaged)
            files = g.files_changed(mirror, base, f"refs/heads/{branch}")
            head = g.head(mirror, f"refs/heads/{branch}")
            if outcome.state == JobState.SUCCEEDED and not self.reported:
                outcome = Outcome(JobState.FAILED, result.exit_code, "no_commit",
                                  "the agent ended without a commit"
                                  + (f" (its uncommitted work is saved at refs/agileplus/salvage/{self.job.id})"
                                     if salvaged else " or any change")
                                  + self._why_nothing(last_error))
            if outcome.state == JobState.SUCCEEDED:
                outcome = self._governance(outcome, mirror, base, head)
                if outcome.reason == "governance_violation" and pushed:
                    self._quarantine(mirror, branch)
            if outcome.state == JobState.SUCCEEDED and not pushed:
                # Work that never reached the origin cannot be reviewed or merged: say so now,
                # rather than a review that later finds no branch.
                outcome = Outcome(JobState.FAILED, outcome.exit_code, "push_failed",
                                  f"the branch {workspace.branch} could not be pushed to the origin (see the job log); "
                                  "its commits are kept in this worker's mirror: retry with `agileplus implement`")
        except g.GitError as exc:  # the agent broke its worktree (deleted .git, corrupted the index…)
            self.say(f"The worktree is no longer a usable git checkout: {exc}")
            return Collected(Outcome(JobState.FAILED, result.exit_code, "worktree_broken",
                                     f"the agent left {worktree.name} unusable: {str(exc)[-300:]}"))
        return Collected(outcome, salvaged=salvaged, pushed=pushed, files=files, head=head,
                         ignored_refs=ignored_refs)

    def _why_nothing(self, last_error: str) -> str:
        """Why a run made no commit: the paths it was refused (its CLI's permission rules or the
        sandbox) name the cause; git's own last word (``nothing to commit``) would not."""
        if self.denied:
            return (f"; it was refused writing {', '.join(self.denied[:5])} (the WP's forbidden paths: its CLI's "
                    "permission rules or the sandbox)")
        return f"; its last error: {last_error[:500]}" if last_error else ""

    def count_tests(self, workspace: Workspace) -> dict | None:
        """The review's test checks, run in the worktree as the agent left it: their parsed counts
        go into the job's result and the ``completed`` event (the review later runs them again
        on main merged with the branch and records its own counts)."""
        counts, results = run_test_checks(self.job.wp, workspace.worktree)
        if counts and counts.get("total") is not None and not counts.get("failed"):
            self.say(f"Tests passing: {counts.get('passed', 0)}/{counts['total']}")  # the example's line
        else:
            for line in (line for r in results for line in r.lines[:1]):
                self.say(f"Tests: {line}")
        self.flush()
        return counts

    def finish(self, collected: Collected, result: ProcessResult, usage: dict, model: str = "") -> DispatchJob:
        """Write the final usage and the outcome with its result summary (and the model the CLI ran)."""
        tests = collected.tests or usage.get("tests")
        usage = self.billed(usage)
        services.update_progress(self.claim, usage=usage)
        salvage_ref = f"refs/agileplus/salvage/{self.job.id}" if collected.salvaged else None
        return services.finish_job(self.claim, collected.outcome, result={
            "commits": len(self.reported), "files_changed": len(collected.files), "files": collected.files[:200],
            "head": collected.head, "pushed": collected.pushed, "salvage_ref": salvage_ref, "model": model,
            "duration_seconds": round(result.duration, 3), **({"tests": tests} if tests else {}),
            "sandbox": self.sandbox_info, **({"limit": self.limit} if self.limit else {}),
            **({"ignored_refs": collected.ignored_refs} if collected.ignored_refs else {}),
            **({"refused_connections": self.egress.refused} if self.egress is not None and self.egress.refused
               else {}),
            **({"denied_paths": self.denied} if self.denied else {}),
            **({"refused_escapes": self.escapes} if self.escapes else {}),
        })

    def billed(self, cli_usage: dict) -> dict:
        """The usage the ledger keeps: the gateway's meter when calls went through it (the CLI's
        self-report beside it, a mismatch said in the log), else the CLI's."""
        if self.gateway is None:
            return cli_usage
        usage = billed_usage(self.job.id, cli_usage)
        if mismatch := cross_check(usage):
            self.say(mismatch)
            log.warning("job %s: %s", self.job.id, mismatch)
        return usage

    def park(self, outcome: Outcome, policy: StreamPolicy) -> bool:
        """A rate limit waits for its reset (then this session resumes), unless the feature names
        ``fallback_harnesses`` (then it is rerouted, as before). False: fail the run as before."""
        if self.config.get("fallback_harnesses"):
            return False
        said = f"{outcome.detail} {policy.last_error}"  # a parked account's reset before the CLI's own words
        self.flush()
        services.update_progress(self.claim, usage=self.billed(policy.usage))
        parked = services.park_rate_limited(self.claim, wait_seconds=rate_limit_wait(said, time.time()),
                                            detail=outcome.detail)
        return parked is not None

    def reroute(self, finished: DispatchJob) -> None:
        """A rate-limited job is queued again on another harness, if one is configured."""
        rerouted = services.reroute_rate_limited(finished)
        if rerouted:
            self.say(f"Routed to {rerouted.harness} as {rerouted.id}")
            self.flush()

    def _foreign_refs(self, worktree: Path, branch: str, before: dict[str, str]) -> list[str]:
        """Refs other than the WP branch the agent changed in its repository: ignored, reported."""
        changed = g.foreign_refs(worktree, branch, before)
        for ref in changed:
            self.say(f"Ignored: the agent changed {ref} (only {branch} is taken from its repository)")
        if changed:
            log.warning("job %s: agent changed refs other than %s: %s", self.job.id, branch, changed)
        return changed

    def _governance(self, outcome: Outcome, mirror: Path, base: str, head: str) -> Outcome:
        """The authoritative check over every commit base..head: a violation fails the run,
        which blocks the WP with the offending commits and paths as audit evidence."""
        gov = governance_for(self.job.wp, mirror, base, head)
        if self.withheld and not any(v.rule == "secret" for v in gov.violations):  # whatever secret_scan says
            gov.violations += held_secret_violations(mirror, base, head, self.secret_values)
        if gov.ok:
            self.say(f"Governance: {counted(gov.commits, 'commit')} checked, no violation")
            return outcome
        for v in gov.violations[:20]:
            self.say(f"Governance violation: {v.detail}")
        return Outcome(
            JobState.FAILED, outcome.exit_code, "governance_violation",
            "; ".join(v.detail for v in gov.violations[:5]),
            metadata={"violations": [v.as_dict() for v in gov.violations[:50]], "base": base, "head": gov.head},
            evidence=[{"commit": v.commit, "path": v.path, "rule": v.rule} for v in gov.violations[:50]],
        )

    def _quarantine(self, mirror: Path, branch: str) -> None:
        """Commits that broke governance leave the WP's branch on the origin (a person could merge
        it): they move, in one atomic push, to ``refs/agileplus/quarantine/<branch>``, outside
        refs/heads. ``implement --fresh`` sets them aside under salvage/ like any old branch."""
        where = f"{g.QUARANTINE_PREFIX}{branch}"
        try:
            g.git("push", "--quiet", "--atomic", "origin", f"+refs/heads/{branch}:{where}", f":refs/heads/{branch}",
                  cwd=mirror)
            self.say(f"Quarantined: the commits that broke governance are at {where} on the origin, not on {branch}")
        except g.GitError as exc:
            self.say(f"Could not move {branch} off the origin's branches to {where}: {exc}")

    def _replayed_job(self) -> DispatchJob | None:
        replay_of = (self.job.result or {}).get("replay_of")
        return DispatchJob.objects.filter(pk=replay_of).first() if replay_of else None

    def _push(self, mirror: Path, branch: str, salvaged: str | None) -> bool:
        # A replay restarts the branch from the original base: it replaces the old head
        # (kept as refs/agileplus/replaced/<branch>), so its push is forced.
        force = "+" if (self.job.result or {}).get("replay_of") else ""
        refspecs = [f"{force}{branch}:refs/heads/{branch}"]
        replaced = f"refs/agileplus/replaced/{branch}"
        if force and g.git("rev-parse", "--verify", "--quiet", replaced, cwd=mirror, check=False):
            refspecs.append(f"+{replaced}:{replaced}")
        if salvaged:
            refspecs.append(f"refs/agileplus/salvage/{self.job.id}:refs/agileplus/salvage/{self.job.id}")
            self.say(f"Salvaged uncommitted work to refs/agileplus/salvage/{self.job.id}")
        try:
            g.push(mirror, refspecs)
            return True
        except g.GitError as exc:
            self.say(f"Push to origin failed: {exc}")
            return False


def outcome_of(result: ProcessResult) -> Outcome:
    """What the agent's exit (or the reason it was stopped) means for the job."""
    stopped = result.stopped
    if stopped is None:
        if result.exit_code == 0:
            return Outcome(JobState.SUCCEEDED, 0)
        return Outcome(JobState.FAILED, result.exit_code, "agent_failed", f"agent exited with {result.exit_code}")
    if stopped.kind == "timeout":
        return Outcome(JobState.TIMED_OUT, -1, "agent_timeout",
                       f"Agent timeout (SIGTERM, then SIGKILL after the {settings.AGENT_KILL_GRACE_SECONDS:g}s grace "
                       "period)"
                       if result.killed else "Agent timeout (stopped by SIGTERM)")
    if stopped.kind == "cancelled":
        return Outcome(JobState.CANCELLED, result.exit_code, "cancelled", stopped.detail)
    if stopped.kind == "rate_limited":
        return Outcome(JobState.FAILED, result.exit_code, "rate_limited", stopped.detail)
    if stopped.kind == "budget":
        return Outcome(JobState.FAILED, result.exit_code, "budget_exceeded", stopped.detail)
    if stopped.kind in LIMIT_REASONS:
        return Outcome(JobState.FAILED, result.exit_code, stopped.kind, stopped.detail)
    return Outcome(JobState.FAILED, result.exit_code, f"agent_{stopped.kind}", stopped.detail)


def build_manifest(job: DispatchJob, adapter: HarnessAdapter, invocation: Invocation, prompt_text: str,
                   workspace: Workspace, environment_names: list[str], sandbox: dict | None = None) -> dict:
    """Everything that determines a run (no secret values), and its hash: a replay runs this again."""
    feature, config = job.feature, job.feature.agent_config or {}
    manifest = {
        "prompt_sha256": sha256_hex(prompt_text), "argv": invocation.argv, "harness": job.harness,
        "cli_version": getattr(adapter, "pinned_version", "") or installed_version(invocation.argv[0]),
        "base_sha": workspace.base, "branch": workspace.branch,
        "constraints": feature.constraints or {}, "timeout_seconds": job.timeout_seconds,
        "environment_names": environment_names, "budget": config.get("budget") or {}, "model": config.get("model"),
        "max_turns": config.get("max_turns"), "idle_timeout_seconds": config.get("idle_timeout_seconds"),
        "gates": [c.get("name") for c in ((feature.project.config or {}).get("review") or {}).get("checks") or []
                  if isinstance(c, dict)],
        **({"sandbox": sandbox} if sandbox is not None else {}),
    }
    manifest["hash"] = sha256_hex(manifest)
    return manifest


def installed_version(binary: str) -> str:
    """The agent CLI's own ``--version`` line (cached per binary), "" if it cannot say."""
    try:
        return cli_version(binary) or ""
    except (OSError, subprocess.SubprocessError):
        return ""


def farm_id() -> str:
    """Which farm (database) a process belongs to: agents' marks carry it, so one machine can
    host workers of several farms without one reaping the other's agents."""
    db = connection.settings_dict
    return sha256_hex(f"{connection.vendor}|{db.get('HOST')}|{db.get('PORT')}|{db.get('NAME')}")[:10]


def reap_orphaned_agents(restarting: str | None = None) -> list[int]:
    """SIGKILL agent processes on this machine whose job attempt nobody holds any more
    (their worker was killed or restarted). Attempts still held, by any worker, are left alone,
    except those held by ``restarting``: a worker that is starting holds nothing yet."""
    return [pid for pids in _reap_orphans(restarting).values() for pid in pids]


def restart_worker(worker: str) -> list[str]:
    """What a worker does as it starts, before it takes a job: end the agents its previous life
    left running on this machine, and release (with an audit entry) the attempts it held."""
    killed = _reap_orphans(worker)
    return services.release_lost_attempts(worker, agents_killed=killed)


def _reap_orphans(restarting: str | None) -> dict[str, list[int]]:
    killed: dict[str, list[int]] = {}
    mine = f"{farm_id()}:"
    for pid, mark in all_marked().items():
        if not mark.startswith(mine):
            continue  # another farm's agent on this machine (another database)
        job_id, _, attempt = mark[len(mine):].rpartition(".")
        if not attempt.isdigit():
            continue
        held = DispatchJob.objects.filter(pk=job_id, attempt=int(attempt), state__in=JobState.HELD)
        if restarting:
            held = held.exclude(worker=restarting)
        if not held.exists():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.setdefault(job_id, []).append(pid)
    if killed:
        log.warning("killed orphaned agent process(es): %s", killed)
    return killed


def run_job(job_id: str, worker: str | None = None) -> str:
    """Claim and run ``job_id``. Returns the final state, or ``not-claimed`` for a duplicate."""
    close_old_connections()
    claim = services.claim_job(job_id, worker or worker_name())
    if claim is None:
        return "not-claimed"
    run = JobRun(claim)
    try:
        return run.run()
    except StaleAttempt:
        return "fenced"
    except (HarnessError, g.GitError, OSError, DomainError) as exc:
        log.warning("job %s failed before the agent ran: %s", job_id, exc)
        run.say(f"Setup failed: {exc}")
        run.flush()
        try:
            # Only what may pass on a next try (a network, a disk, this worker's CLI) is retried.
            lasting = isinstance(exc, (LastingSetupError, DomainError))
            if not lasting and services.release_for_retry(claim, f"setup failed: {exc}"):
                return JobState.QUEUED
            services.finish_job(claim, Outcome(JobState.FAILED, None, "setup_failed", str(exc)), result={})
        except StaleAttempt:
            return "fenced"
        return JobState.FAILED
    except Exception as exc:  # noqa: BLE001 - a bug must fail the job now, not leave it to expire its lease
        log.exception("job %s crashed in the runner", job_id)
        detail = f"internal error in the worker: {type(exc).__name__}: {str(exc)[-300:]}"
        run.say(detail)
        run.flush()
        try:
            services.finish_job(claim, Outcome(JobState.FAILED, None, "internal_error", detail), result={})
        except StaleAttempt:
            return "fenced"
        return JobState.FAILED
