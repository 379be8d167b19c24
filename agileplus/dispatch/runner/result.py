"""What a run leaves: the outcome of the agent's exit (``outcome_of``), what reached the origin
(``Collected``), the test counts, the job finished with its billed usage, or parked until a rate
limit resets, or rerouted to a fallback harness. Part of ``JobRun`` (``ResultSteps``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from agileplus.dispatch import job_log, services
from agileplus.dispatch.gateway import billed_usage, cross_check
from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.dispatch.runner.workspace import Workspace
from agileplus.dispatch.services import Outcome
from agileplus.dispatch.stream_policy import StreamPolicy, rate_limit_wait
from agileplus.provenance.services import note_agent_commits
from agileplus.review.services import run_test_checks
from harnesses import git as g
from harnesses.process import ProcessResult

log = logging.getLogger("agileplus.runner")
LIMIT_REASONS = ("memory_limit", "disk_limit")  # a job stopped by one: recorded, its WP blocked with it


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
    if stopped.kind == "handed_on":
        return Outcome(JobState.FAILED, result.exit_code, "handed_on", stopped.detail)
    if stopped.kind == "budget":
        return Outcome(JobState.FAILED, result.exit_code, "budget_exceeded", stopped.detail)
    if stopped.kind in LIMIT_REASONS:
        return Outcome(JobState.FAILED, result.exit_code, stopped.kind, stopped.detail)
    return Outcome(JobState.FAILED, result.exit_code, f"agent_{stopped.kind}", stopped.detail)


class ResultSteps:
    """The result steps of ``JobRun``."""

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
            if outcome.state == JobState.SUCCEEDED and pushed:
                note_agent_commits(self.job, mirror, base, head)  # the worker's Agent Trace notes, on the origin
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
        job_log.update_progress(self.claim, usage=usage)
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
        job_log.update_progress(self.claim, usage=self.billed(policy.usage))
        parked = services.park_rate_limited(self.claim, wait_seconds=rate_limit_wait(said, time.time()),
                                            detail=outcome.detail)
        return parked is not None

    def hand_on(self, policy: StreamPolicy) -> bool:
        """Its worker is shutting down: the job goes back to the queue now (commits pushed, session
        captured by now), not when its lease runs out; the attempt is not held against its retries."""
        self.say("Handed on: this worker is shutting down; the job goes back to the queue")
        self.flush()
        job_log.update_progress(self.claim, usage=self.billed(policy.usage))
        return services.hand_on(self.claim, "handed on: its worker shut down (the next attempt resumes)")

    def reroute(self, finished: DispatchJob) -> None:
        """A rate-limited job is queued again on another harness, if one is configured."""
        rerouted = services.reroute_rate_limited(finished)
        if rerouted:
            self.say(f"Routed to {rerouted.harness} as {rerouted.id}")
            self.flush()
