"""Running one dispatch job on this worker, from claim to result.

claim → mirror + worktree → prompt → agent process (heartbeat, log, commits) →
push (and salvage) → finish. Every write names the attempt it holds (fencing).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from agileplus.core.canonical import sha256_hex
from agileplus.core.errors import DomainError
from agileplus.dispatch import services
from agileplus.dispatch.costs import allowance_for, usage_cost
from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.dispatch.prompt import PackagedPrompt, build_prompt
from agileplus.dispatch.sandboxing import harness_credentials, job_sandbox, report_refused, start_egress
from agileplus.dispatch.secrets import agent_base_environment, redact, resolve_environment
from agileplus.dispatch.services import Claim, Outcome, StaleAttempt
from harnesses import git as g
from harnesses.adapters.command import PROMPT_FILE_ENV
from harnesses.base import HarnessError, RunSpec
from harnesses.process import JOB_MARK_ENV, AgentProcess, StopReason, reap_marked
from harnesses.registry import get_adapter

log = logging.getLogger("agileplus.runner")
LOG_FLUSH_LINES = 50
LOG_FLUSH_SECONDS = 0.5
# What the agent CLIs say when their backend refuses more work for now.
RATE_LIMITED = re.compile(r"rate[ _-]?limit|\b429\b|too many requests|quota exceeded|overloaded", re.IGNORECASE)


def worker_name() -> str:
    return os.environ.get("AGILEPLUS_WORKER_NAME") or socket.gethostname()


def worker_root(name: str | None = None) -> Path:
    return settings.WORKER_DATA_DIR / (name or worker_name())


class JobRun:
    def __init__(self, claim: Claim):
        self.claim = claim
        self.job = DispatchJob.objects.select_related("feature__project", "wp").get(pk=claim.job_id)
        self.secret_values: list[str] = []
        self.pending: list[tuple[dt.datetime, str, str]] = []
        self.last_flush = time.monotonic()
        self.reported: set[str] = set()
        self.fenced = False
        self.stop_heartbeat = threading.Event()

    # --- log -------------------------------------------------------------------
    def say(self, text: str, stream: str = "agileplus") -> None:
        self.pending.append((timezone.now(), stream, redact(text, self.secret_values)))
        if len(self.pending) >= LOG_FLUSH_LINES or time.monotonic() - self.last_flush > LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        lines, self.pending = self.pending, []
        self.last_flush = time.monotonic()
        if lines and not self.fenced:
            try:
                services.append_log(self.claim, lines)
            except StaleAttempt:
                self.fenced = True

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
        finally:
            connection.close()

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
        for commit in commits:
            if commit.sha in self.reported:
                continue
            self.reported.add(commit.sha)
            self.say(f"Commit: {commit.message.splitlines()[0] if commit.message else commit.sha[:7]}")
            self.flush()
            try:
                services.report_commit(self.claim, sha=commit.sha, message=commit.message, files=commit.files)
            except StaleAttempt:
                self.fenced = True

    def run(self) -> str:
        # The lease is renewed from the claim to the final write: setup (fetch, worktree) and
        # the push/governance after the agent can outlast a short lease on a busy machine.
        heart = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{self.claim.job_id}")
        heart.start()
        try:
            return self._run()
        finally:
            self.stop_heartbeat.set()

    def _run(self) -> str:
        job = self.job
        feature, wp = job.feature, job.wp
        config = dict(feature.agent_config or {})
        adapter = get_adapter(job.harness)
        root = worker_root(self.claim.worker)
        mirror = self.mirror = g.ensure_mirror(root, feature.project.repo_url)
        branch = self.branch = g.branch_name(feature.slug, wp.code)
        main = feature.project.main_branch
        original = self._replayed_job()
        worktree, base = g.create_worktree(mirror, root / ".worktrees", g.worktree_name(feature.slug, wp.code),
                                           branch, original.manifest["base_sha"] if original else g.origin_ref(main),
                                           reset=original is not None)
        refs_before = g.agent_refs(worktree)
        resolved = resolve_environment(config.get("environment") or {})
        self.secret_values = resolved.secret_values
        if original:  # a replay runs the original's exact prompt on the original's base
            prompt = PackagedPrompt(original.prompt, dict(original.prompt_sizes or {}), len(wp.deliverables or []))
            self.say(f"Replaying {original.id} (manifest {original.manifest.get('hash', '')[:12]})")
        else:
            prompt = build_prompt(feature, wp, config=config, environment_names=resolved.names, base_commit=base,
                                  notes=(job.result or {}).get("notes"), timeout_seconds=job.timeout_seconds)
        prompt_dir = Path(tempfile.mkdtemp(prefix=f"agileplus-{job.id}-"))
        prompt_file = prompt_dir / "prompt.md"
        prompt_file.write_text(prompt.text)
        mark = f"{farm_id()}:{job.id}.{self.claim.attempt}"
        env = {**agent_base_environment(), **resolved.env, PROMPT_FILE_ENV: str(prompt_file), JOB_MARK_ENV: mark}
        spec = RunSpec(prompt=prompt.text, workdir=worktree, env=env, model=config.get("model"),
                       timeout_seconds=job.timeout_seconds,
                       allowed_paths=list((feature.constraints or {}).get("allowed_paths") or []),
                       forbidden_paths=list((feature.constraints or {}).get("forbidden_paths") or []),
                       options={k: v for k, v in config.items() if k not in ("environment",)})
        invocation = adapter.build_command(spec)
        env.update(invocation.env)
        credentials = harness_credentials(job.harness)
        env.update(credentials.env)  # the worker's own, for this harness only; never stored
        sandbox = job_sandbox(harness_binary=invocation.argv[0] if invocation.argv else None, worktree=worktree,
                              mirror=mirror, prompt_dir=prompt_dir, config=config, credentials=credentials,
                              path_env=env.get("PATH"))
        egress = start_egress(sandbox, harness=job.harness, config=config, env=env, socket_dir=prompt_dir)
        manifest = {
            "prompt_sha256": sha256_hex(prompt.text), "argv": invocation.argv, "harness": job.harness,
            "cli_version": getattr(adapter, "pinned_version", ""), "base_sha": base, "branch": branch,
            "constraints": feature.constraints or {}, "timeout_seconds": job.timeout_seconds,
            "environment_names": resolved.names, "budget": config.get("budget") or {},
            "max_turns": config.get("max_turns"), "idle_timeout_seconds": config.get("idle_timeout_seconds"),
            "gates": [c.get("name") for c in ((feature.project.config or {}).get("review") or {}).get("checks") or []
                      if isinstance(c, dict)],
            "sandbox": sandbox.describe(),
        }
        manifest["hash"] = sha256_hex(manifest)
        proc = AgentProcess(invocation.argv, cwd=worktree, env=env, stdin_text=invocation.stdin_text,
                            timeout_seconds=job.timeout_seconds, grace_seconds=settings.AGENT_KILL_GRACE_SECONDS,
                            idle_seconds=config.get("idle_timeout_seconds"), sandbox=sandbox.open())
        self.say("Workspace setup:")
        self.say(f"  Worktree: .worktrees/{g.worktree_name(feature.slug, wp.code)}")
        self.say(f"  Branch: {branch}")
        self.say(f"  Base commit: {base[:7]} ({main})")
        self.say(f"  Sandbox: {sandbox.mode}, network {sandbox.spec.network}")
        self.say("Prompt prepared:")
        for line in prompt.summary_lines(feature.slug, wp.code):
            self.say(f"  {line}")
        pid = proc.start()
        services.start_running(self.claim, pid=pid, base_commit=base, branch=branch, worktree=str(worktree),
                               prompt=prompt.text, prompt_sizes=prompt.sections, manifest=manifest,
                               session_id=job.id, current_activity="starting")
        self.say(f"Agent session started (pid {pid}, attempt {self.claim.attempt})")
        usage: dict = {}
        allowance = allowance_for(job)
        max_turns = config.get("max_turns")

        def on_line(stream: str, text: str) -> StopReason | None:
            stop = None
            for event in adapter.parse_line(text) if stream == "stdout" else []:
                if event.session_id:
                    services.update_progress(self.claim, session_id=event.session_id)
                if event.usage:
                    usage.update({k: v for k, v in event.usage.as_dict().items() if v is not None})
                    services.update_progress(self.claim, usage=dict(usage))  # the ledger is live
                    cost = usage_cost(usage)
                    if allowance.crossed(cost):
                        stop = StopReason("budget", f"cost ${cost} crossed the {allowance.budget} budget "
                                                    f"(${allowance.limit} left)")
                    elif max_turns and (usage.get("turns") or 0) > int(max_turns):
                        stop = StopReason("turns", f"{usage['turns']} turns exceed max_turns {max_turns}")
                if event.is_error and RATE_LIMITED.search(event.text or ""):
                    stop = StopReason("rate_limited", f"{job.harness} is rate-limited: {event.text[:200]}")
                if event.text:
                    self.say(event.text, "agent")
                    if event.kind != "result":
                        services.update_progress(self.claim, current_activity=event.text)
            if stream == "stderr":
                self.say(text, "stderr")
            return stop

        def tick() -> StopReason | None:
            report_refused(self, egress)
            self.flush()
            self.scan_commits(worktree, base, strict=False)
            if self.fenced:
                return StopReason("fenced", "this worker no longer holds the job")
            if services.cancel_requested(self.claim):
                return StopReason("cancelled", "cancel requested")
            return None

        try:
            result = proc.run(on_line, tick, on_stop=lambda t: self.say(t))
        finally:
            reap_marked(mark)
            sandbox.close()
            if egress is not None:
                egress.stop()
                report_refused(self, egress)
            prompt_file.unlink(missing_ok=True)
            prompt_dir.rmdir()
        tests = (usage or {}).get("tests")
        outcome = self._outcome(result)
        try:
            self.scan_commits(worktree, base)
            ignored_refs = self._foreign_refs(worktree, branch, refs_before)
            salvaged = g.salvage(mirror, worktree, branch, f"refs/agileplus/salvage/{job.id}")
            pushed = self._push(mirror, branch, salvaged)
            files = g.files_changed(mirror, base, f"refs/heads/{branch}")
            head = g.head(mirror, f"refs/heads/{branch}")
            if outcome.state == JobState.SUCCEEDED:
                outcome = self._governance(outcome, mirror, base)
        except g.GitError as exc:  # the agent broke its worktree (deleted .git, corrupted the index…)
            self.say(f"The worktree is no longer a usable git checkout: {exc}")
            salvaged, pushed, files, head, ignored_refs = None, False, [], "", []
            outcome = Outcome(JobState.FAILED, result.exit_code, "worktree_broken",
                              f"the agent left {worktree.name} unusable: {str(exc)[-300:]}")
        self.say(
            f"Agent {'finished' if outcome.state == JobState.SUCCEEDED else 'failed'}: exit {result.exit_code}, "
            f"{len(self.reported)} commits, {len(files)} files changed"
        )
        self.flush()
        if self.fenced:
            return "fenced"
        services.update_progress(self.claim, usage=usage)
        finished = services.finish_job(self.claim, outcome, result={
            "commits": len(self.reported), "files_changed": len(files), "files": files[:200],
            "head": head, "pushed": pushed, "salvage_ref": f"refs/agileplus/salvage/{job.id}"
            if salvaged else None, "duration_seconds": round(result.duration, 3), **({"tests": tests} if tests else {}),
            "sandbox": sandbox.describe(), **({"ignored_refs": ignored_refs} if ignored_refs else {}),
            **({"refused_connections": egress.refused} if egress is not None and egress.refused else {}),
        })
        if outcome.reason == "rate_limited":
            rerouted = services.reroute_rate_limited(finished)
            if rerouted:
                self.say(f"Routed to {rerouted.harness} as {rerouted.id}")
                self.flush()
        return outcome.state

    def _foreign_refs(self, worktree: Path, branch: str, before: dict[str, str]) -> list[str]:
        """Refs other than the WP branch the agent changed in its repository: ignored, reported."""
        changed = g.foreign_refs(worktree, branch, before)
        for ref in changed:
            self.say(f"Ignored: the agent changed {ref} (only {branch} is taken from its repository)")
        if changed:
            log.warning("job %s: agent changed refs other than %s: %s", self.job.id, branch, changed)
        return changed

    def _governance(self, outcome: Outcome, mirror: Path, base: str) -> Outcome:
        """The authoritative check over every commit base..head: a violation fails the run,
        which blocks the WP with the offending commits and paths as audit evidence."""
        from agileplus.review.services import governance_for

        gov = governance_for(self.job.wp, mirror, base, g.head(mirror, f"refs/heads/{self.branch}"))
        if gov.ok:
            self.say(f"Governance: {gov.commits} commits checked, no violation")
            return outcome
        for v in gov.violations[:20]:
            self.say(f"Governance violation: {v.detail}")
        return Outcome(
            JobState.FAILED, outcome.exit_code, "governance_violation",
            "; ".join(v.detail for v in gov.violations[:5]),
            metadata={"violations": [v.as_dict() for v in gov.violations[:50]], "base": base, "head": gov.head},
            evidence=[{"commit": v.commit, "path": v.path, "rule": v.rule} for v in gov.violations[:50]],
        )

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

    def _outcome(self, result) -> Outcome:
        stopped = result.stopped
        if stopped is None:
            if result.exit_code == 0:
                return Outcome(JobState.SUCCEEDED, 0)
            return Outcome(JobState.FAILED, result.exit_code, "agent_failed", f"agent exited with {result.exit_code}")
        if stopped.kind == "timeout":
            return Outcome(JobState.TIMED_OUT, -1, "agent_timeout",
                           f"Agent timeout (SIGKILL after {settings.AGENT_KILL_GRACE_SECONDS:g}s warning period)"
                           if result.killed else "Agent timeout (stopped by SIGTERM)")
        if stopped.kind == "cancelled":
            return Outcome(JobState.CANCELLED, result.exit_code, "cancelled", stopped.detail)
        if stopped.kind == "rate_limited":
            return Outcome(JobState.FAILED, result.exit_code, "rate_limited", stopped.detail)
        if stopped.kind == "budget":
            return Outcome(JobState.FAILED, result.exit_code, "budget_exceeded", stopped.detail)
        return Outcome(JobState.FAILED, result.exit_code, f"agent_{stopped.kind}", stopped.detail)


def farm_id() -> str:
    """Which farm (database) a process belongs to: agents' marks carry it, so one machine can
    host workers of several farms without one reaping the other's agents."""
    db = connection.settings_dict
    return sha256_hex(f"{connection.vendor}|{db.get('HOST')}|{db.get('PORT')}|{db.get('NAME')}")[:10]


def reap_orphaned_agents() -> list[int]:
    """SIGKILL agent processes on this machine whose job attempt nobody holds any more
    (their worker was killed or restarted). Attempts still held, by any worker, are left alone."""
    from harnesses.process import all_marked

    killed = []
    mine = f"{farm_id()}:"
    for pid, mark in all_marked().items():
        if not mark.startswith(mine):
            continue  # another farm's agent on this machine (another database)
        job_id, _, attempt = mark[len(mine):].rpartition(".")
        if not attempt.isdigit():
            continue
        held = DispatchJob.objects.filter(pk=job_id, attempt=int(attempt), state__in=JobState.HELD).exists()
        if not held:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    if killed:
        log.warning("killed %d orphaned agent process(es): %s", len(killed), killed)
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
            if services.release_for_retry(claim, f"setup failed: {exc}"):
                return JobState.QUEUED
            services.finish_job(claim, Outcome(JobState.FAILED, None, "setup_failed", str(exc)), result={})
        except StaleAttempt:
            return "fenced"
        return JobState.FAILED
