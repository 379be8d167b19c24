"""Running one dispatch job on this worker, from claim to result.

claim → mirror + worktree → prompt → agent process (heartbeat, log, commits) →
push (and salvage) → finish. Every write names the attempt it holds (fencing).

``JobRun`` holds one run's state and its order of steps (``_run``); the steps live beside it, one
module each: ``log`` (log lines, heartbeat), ``workspace`` (mirror, worktree, environment, prompt,
manifest), ``agent`` (the process and its stream), ``commits`` (scan, push, governance) and
``result`` (outcome, finish, park, reroute). Here too: reaping orphaned agents and ``run_job``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from pathlib import Path

from django.db import close_old_connections

from agileplus.api.tokens import revoke_job_token
from agileplus.core.errors import DomainError
from agileplus.core.redaction import LogStream
from agileplus.core.text import counted
from agileplus.dispatch import reaper, services, sessions
from agileplus.dispatch.candidacy import candidacy_of
from agileplus.dispatch.claims import Claim, StaleAttempt
from agileplus.dispatch.costs import allowance_for
from agileplus.dispatch.gateway import GatewayPlan
from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.dispatch.reaper import worker_name
from agileplus.dispatch.runner.agent import AgentSteps
from agileplus.dispatch.runner.commits import CommitSteps
from agileplus.dispatch.runner.log import LOG_FLUSH_SECONDS, RunLog
from agileplus.dispatch.runner.result import ResultSteps, outcome_of
from agileplus.dispatch.runner.workspace import WorkspaceSteps, farm_id, worker_root
from agileplus.dispatch.services import Outcome
from agileplus.dispatch.stream_policy import StreamPolicy
from agileplus.provenance.services import trace_job
from harnesses import git as g
from harnesses.base import HarnessAdapter, HarnessError, LastingSetupError
from harnesses.process import all_marked
from harnesses.registry import get_adapter

log = logging.getLogger("agileplus.runner")

__all__ = ["LOG_FLUSH_SECONDS", "JobRun", "farm_id", "outcome_of", "reap_orphaned_agents", "restart_worker",
           "run_job", "worker_name", "worker_root"]


class JobRun(RunLog, WorkspaceSteps, AgentSteps, CommitSteps, ResultSteps):
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
        self.branch_files: set[str] | None = None  # its files, for Created vs Rewrote (``stream``)
        self.last_said = ""  # the agent's last message: its final result repeats it
        self.candidacy = candidacy_of(self.job)  # one of several candidates: its own branch, no kept session

    @functools.cached_property
    def adapter(self) -> HarnessAdapter:
        # Looked up inside run(): an unknown harness is a setup failure, reported on the job.
        return get_adapter(self.job.harness)

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
        if collected.outcome.reason == "handed_on" and self.hand_on(policy):
            return JobState.QUEUED  # its worker is stopping: the next attempt, on any worker, resumes it
        if collected.outcome.state == JobState.SUCCEEDED:
            collected.tests = self.count_tests(workspace)
        finished = self.finish(collected, result, policy.usage, model=policy.model or self.config.get("model") or "")
        trace_job(finished)  # OpenTelemetry GenAI spans, when an OTLP endpoint is set
        if collected.outcome.reason == "rate_limited":
            self.reroute(finished)
        return collected.outcome.state


def reap_orphaned_agents(restarting: str | None = None) -> list[int]:
    """SIGKILL agent processes on this machine whose job attempt nobody holds any more
    (their worker was killed or restarted). Attempts still held, by any worker, are left alone,
    except those held by ``restarting``: a worker that is starting holds nothing yet."""
    return [pid for pids in _reap_orphans(restarting).values() for pid in pids]


def restart_worker(worker: str) -> list[str]:
    """What a worker does as it starts, before it takes a job: end the agents its previous life
    left running on this machine, and release (with an audit entry) the attempts it held."""
    reaper.clear_shutting_down(worker)
    killed = _reap_orphans(worker)
    return reaper.release_lost_attempts(worker, agents_killed=killed)


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
    if reaper.shutting_down(worker or worker_name()):  # stopping: another worker takes it
        services.ring_again_later(job_id)
        return "not-claimed"
    claim = services.claim_job(job_id, worker or worker_name())
    if claim is None:
        return "not-claimed"
    log.info("job %s: attempt %s claimed by %s", job_id, claim.attempt, claim.worker)
    run = JobRun(claim)
    try:
        state = run.run()
        log.info("job %s: attempt %s ended %s", job_id, claim.attempt, state)
        return state
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
