"""What a job knows of being one candidate of several for its WP (best of N, issue 31).

The round and its score cards belong to the workflow (``workflow/candidates.py``); the job only
carries, in ``result["candidate"]``, what its run needs: its index (``AGILEPLUS_CANDIDATE`` for
the agent), its own branch and the round it belongs to. A job without it is an ordinary run."""

from __future__ import annotations

from dataclasses import dataclass

from agileplus.dispatch.models import DispatchJob, JobState

CANDIDATE_ENV = "AGILEPLUS_CANDIDATE"


@dataclass(frozen=True)
class Candidacy:
    round_id: int
    index: int
    branch: str

    def as_dict(self) -> dict:
        return {"round": self.round_id, "index": self.index, "branch": self.branch}


def candidacy_of(job: DispatchJob) -> Candidacy | None:
    raw = (job.result or {}).get("candidate")
    if not isinstance(raw, dict):
        return None
    return Candidacy(int(raw["round"]), int(raw["index"]), str(raw["branch"]))


def ended_candidate(job_id: str) -> bool:
    """A job of a best-of-N round that has ended: the workflow owes it a score."""
    job = DispatchJob.objects.filter(pk=job_id, state__in=JobState.FINAL).only("result").first()
    return job is not None and candidacy_of(job) is not None


def candidate_branch(wp_branch: str, index: int) -> str:
    """``feat/003-auth-system-WP01`` → ``feat/003-auth-system-WP01-c2``."""
    return f"{wp_branch}-c{index}"


def is_candidate_branch(wp_branch: str, branch: str) -> bool:
    head, _, number = branch.rpartition("-c")
    return head == wp_branch and number.isdigit()
