"""The agent process of a run: started in its sandbox, its output streamed line by line under the
stream policy (budget, turns, idle, rate limit), its events recorded, refused paths and privileged
operations noted, the timeout warning and the memory and disk limits watched. Part of ``JobRun``
(``AgentSteps``).
"""

from __future__ import annotations

from django.conf import settings

from agileplus.dispatch import job_log, reaper, services
from agileplus.dispatch.gateway import gateway_stop
from agileplus.dispatch.models import ACTIVITY_STREAM, SETUP_STREAM, TOOL_STREAM
from agileplus.dispatch.runner.result import LIMIT_REASONS
from agileplus.dispatch.runner.workspace import Launch, Workspace
from agileplus.dispatch.sandboxing import denied_attempts, escape_attempt, hidden_paths, report_refused
from agileplus.dispatch.stream_policy import StreamPolicy
from harnesses import git as g
from harnesses.activity import activity_lines, relative
from harnesses.base import AgentEvent
from harnesses.disk import DiskCap
from harnesses.process import AgentProcess, ProcessResult, StopReason, reap_marked
from harnesses.sandbox import Limits, Sandbox


class AgentSteps:
    """The agent process steps of ``JobRun``."""

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
        # The branch's files as the agent found them (read in the mirror, never the agent's repository):
        # whether a write creates or rewrites a file, whatever the disk says by the time its line is read.
        self.branch_files = set(g.git("ls-tree", "-r", "--name-only", workspace.base, cwd=workspace.mirror)
                                .splitlines()) if workspace.base else None
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
                job_log.update_progress(self.claim, usage=dict(policy.usage))
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
        job_log.record_refusal(self.claim, "escape_refused", "escape_refused", line)

    def record(self, event: AgentEvent) -> None:
        """An event in the log: a tool use as its readable activity (and its raw line for `logs
        --raw`); anything else as the adapter wrote it, the final result once, not again after
        the message it repeats."""
        readable = activity_lines(event, self.workdir, self.branch_files)
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
        job_log.record_timeout_warning(self.claim, seconds_left)

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
        if reaper.shutting_down(self.claim.worker):  # a rolling restart: stop now, hand the job on
            return StopReason("handed_on", "its worker is shutting down")
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
        job_log.record_refusal(self.claim, "limit_exceeded", stopped.kind, stopped.detail)
