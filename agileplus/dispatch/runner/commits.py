"""A run's commits: read in the worker's mirror (never run in the agent's repository), reported as
they come, held back when one carries a secret, pushed while the agent runs and after it (salvage
of a failed run's work, quarantine of refs the agent moved), and governance over base..head.
Part of ``JobRun`` (``CommitSteps``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from agileplus.core.redaction import redact
from agileplus.core.text import counted
from agileplus.dispatch import job_log
from agileplus.dispatch.claims import StaleAttempt
from agileplus.dispatch.models import JobState
from agileplus.dispatch.services import Outcome
from agileplus.review.governance import held_secret_violations
from agileplus.review.services import governance_for
from harnesses import git as g

log = logging.getLogger("agileplus.runner")


class CommitSteps:
    """The commit steps of ``JobRun``."""

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
                first_report = job_log.report_commit(self.claim, sha=commit.sha, message=commit.message,
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
