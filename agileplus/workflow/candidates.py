"""Best of N: several candidate jobs for one WP, each on its own branch, one chosen on evidence.

The steps, in order, each called explicitly:

1. ``start_candidates``: refuse what cannot run (N over the maximum, an unknown or unavailable
   harness, a WP already running, a budget that cannot pay for one more candidate), then queue N
   jobs in one transaction (``feat/…-WPnn-c1`` …), audited, event ``candidate.started``.
2. ``score_candidate`` (the worker, once the candidate's job ended; the reaper for any missed):
   the review's checks on main merged with its branch → its score card (``workflow/scoring.py``),
   event ``candidate.scored``; then ``decide``.
3. ``decide``: under the round's lock, by its quorum (``first_pass``, ``best_of_finished`` after
   ``grace_seconds``, ``all``), choose the best passing candidate, or none when all finished and
   none passed. Audited with every card, event ``candidate.chosen`` / ``candidate.none_passed``.
4. ``settle`` (idempotent, retried by the reaper): stop the candidates still running, move the
   winner's commits onto the WP's branch and the WP to for_review (review and the merge queue
   follow as for any WP); the others' branches go under ``salvage/``; none passed → WP blocked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agileplus.core.actors import SYSTEM, Actor, parse_actor
from agileplus.core.errors import DomainError, IllegalTransition
from agileplus.dispatch.candidacy import Candidacy, candidate_branch
from agileplus.dispatch.costs import usage_cost
from agileplus.dispatch.models import DispatchJob, JobState, Worker
from agileplus.dispatch.services import cancel_job, check_request, enqueue_job, job_config
from agileplus.events import subjects
from agileplus.features.lifecycles import WPState
from agileplus.features.models import WorkPackage
from agileplus.features.project_config import budget_config
from agileplus.features.services import blocking_dependencies, record_wp_entry, transition_wp
from agileplus.review.merge import repo_lock, set_aside_branch, workspace
from agileplus.workflow import scoring
from agileplus.workflow.models import Candidate, CandidateRound
from harnesses.git import GitError, git

log = logging.getLogger("agileplus.workflow")


@dataclass(frozen=True)
class CandidatePlan:
    """What ``implement --candidates`` (or ``agent.candidates``) asks for, checked."""

    count: int
    harnesses: list[str]  # one per candidate
    quorum: str
    grace_seconds: int


def candidates_config(wp: WorkPackage) -> dict:
    """``agent.candidates`` of the feature's config (a count, or {count, agents, quorum,
    grace_seconds}), its count overridden by the WP's task file (``candidates: N``; 1: one attempt)."""
    raw = job_config(wp).get("candidates")
    if wp.candidates is not None:
        config = dict(raw) if isinstance(raw, dict) else {}
        return {**config, "count": wp.candidates} if wp.candidates > 1 else {}
    if raw is None:
        return {}
    if isinstance(raw, int) and not isinstance(raw, bool):
        return {"count": raw}
    if isinstance(raw, dict):
        return dict(raw)
    raise DomainError(f"agent.candidates must be a number or a mapping, not {raw!r}", field="agent.candidates",
                      fix="e.g. candidates: 3, or candidates: {count: 3, agents: [claude-code, codex]}")


def plan_candidates(wp: WorkPackage, *, count: int | None = None, harnesses: list[str] | None = None,
                    quorum: str | None = None, grace_seconds: int | None = None) -> CandidatePlan:
    """The request checked field by field; each refusal names the field and the fix."""
    config = candidates_config(wp)
    count = int(count if count is not None else config.get("count") or 0)
    most = settings.MAX_CANDIDATES
    if count < 2 or count > most:
        raise DomainError(f"--candidates must be between 2 and {most}, not {count}", field="--candidates",
                          fix=f"ask for 2 to {most} candidates (AGILEPLUS_MAX_CANDIDATES raises the maximum), "
                              "or implement without --candidates for one attempt")
    names = list(harnesses or config.get("agents") or [job_config(wp).get("harness") or ""])
    for name in names:
        check_harness_available(wp, name)
    quorum = quorum or config.get("quorum") or CandidateRound.BEST_OF_FINISHED
    if quorum not in CandidateRound.QUORUMS:
        raise DomainError(f"unknown quorum '{quorum}'", field="--quorum",
                          fix=f"use one of {', '.join(CandidateRound.QUORUMS)}")
    grace = int(grace_seconds if grace_seconds is not None else config.get("grace_seconds", 120))
    if grace < 0:
        raise DomainError("grace_seconds cannot be negative", field="agent.candidates.grace_seconds")
    chosen = [check_request(wp, names[i % len(names)] or None, None, None) for i in range(count)]
    return CandidatePlan(count, chosen, quorum, grace)


def check_harness_available(wp: WorkPackage, name: str) -> None:
    """A named harness must be registered and, when workers have announced themselves, offered by one."""
    try:
        check_request(wp, name or None, None, None)
    except DomainError as exc:
        raise DomainError(exc.message, field="--agents", fix=exc.fix) from None
    if not name:
        return
    fresh = timezone.now() - dt.timedelta(seconds=settings.WORKER_SILENT_SECONDS)
    workers = list(Worker.objects.filter(last_heartbeat__gte=fresh, stopped_at__isnull=True))
    if workers and not any((w.harnesses or {}).get(name, {}).get("available") for w in workers):
        raise DomainError(f"no running worker offers the harness '{name}'", field="--agents",
                          fix="start a worker with that agent installed (`agileplus agents list` on it), "
                              "or name another harness")


def affordable(wp: WorkPackage, count: int) -> int:
    """How many candidates the WP's budget can pay for: each may spend up to ``job_usd`` (or, without
    it, what the feature's finished jobs cost on average); none starts that the rest cannot pay."""
    limits = budget_config(job_config(wp))
    if "wp_usd" not in limits:
        return count
    spent = sum((usage_cost(u) for u in wp.jobs.values_list("usage", flat=True)), Decimal(0))
    each = limits.get("job_usd") or average_job_cost(wp)
    if not each:
        return count
    return max(0, min(count, int((limits["wp_usd"] - spent) / each)))


def average_job_cost(wp: WorkPackage) -> Decimal | None:
    costs = [usage_cost(u) for u in DispatchJob.objects.filter(feature=wp.feature, state__in=JobState.FINAL)
             .values_list("usage", flat=True)]
    costs = [c for c in costs if c]
    return sum(costs, Decimal(0)) / len(costs) if costs else None


def start_candidates(wp: WorkPackage, *, actor: Actor | str, plan: CandidatePlan,
                     timeout_seconds: int | None = None, retries: int | None = None,
                     send: bool = True) -> CandidateRound:
    """Step 1: queue the round's candidate jobs, in one transaction."""
    actor = parse_actor(actor)
    if wp.state != WPState.PLANNED:
        raise IllegalTransition(f"{wp.code} is {wp.state}; candidates start from a planned WP", field="wp",
                                fix=f"`agileplus wp transition {wp.code} --to planned` resets a blocked WP"
                                if wp.state == WPState.BLOCKED else "wait for the running job or review it")
    if active := wp.jobs.filter(state__in=JobState.ACTIVE).first():
        raise IllegalTransition(f"{wp.code} already has an active job {active.id} ({active.state})", field="wp",
                                fix=f"`agileplus jobs cancel {active.id}` first")
    if blockers := blocking_dependencies(wp):
        raise IllegalTransition(f"{wp.code} is blocked by " + ", ".join(b.code for b in blockers), field="wp",
                                fix="finish the blocking work packages first")
    count = affordable(wp, plan.count)
    if count < 1:
        raise DomainError(f"{wp.code}'s budget cannot pay for one more candidate", field="agent.budget.wp_usd",
                          fix="raise agent.budget.wp_usd, or ask for fewer candidates")
    with transaction.atomic():
        rnd = CandidateRound.objects.create(feature=wp.feature, wp=wp, quorum=plan.quorum,
                                            grace_seconds=plan.grace_seconds, requested_by=str(actor),
                                            note="" if count == plan.count else
                                            f"{plan.count - count} of {plan.count} not started: the WP's budget")
        for index, harness in enumerate(plan.harnesses[:count], 1):
            candidacy = Candidacy(rnd.pk, index, candidate_branch(wp.branch_name, index))
            job = enqueue_job(wp, harness=harness, actor=actor, timeout_seconds=timeout_seconds, retries=retries,
                              send=send, candidacy=candidacy)
            Candidate.objects.create(round=rnd, index=index, job=job, branch=candidacy.branch, harness=harness)
        summary = {"round": rnd.pk, "candidates": count, "quorum": rnd.quorum,
                   "harnesses": plan.harnesses[:count], "note": rnd.note}
        record_wp_entry(wp, actor=actor, transition=f"{wp.code}:candidates_started", metadata=summary,
                        subject=candidate_event(wp, "started"), payload={"feature_slug": wp.feature.slug, **summary})
    return rnd


def candidate_event(wp: WorkPackage, kind: str) -> str:
    return subjects.wp_candidate(wp.code, kind)


def score_candidate(job_id: str) -> Candidate | None:
    """Step 2: score a finished candidate (once: a second call finds the card), then decide."""
    candidate = Candidate.objects.select_related("round__wp__feature__project", "job").filter(job_id=job_id).first()
    if candidate is None or candidate.job.state not in JobState.FINAL:
        return candidate
    if candidate.scored_at is None:
        card = scoring.score_card(candidate.round.wp, candidate.job, candidate.branch)
        if Candidate.objects.filter(pk=candidate.pk, scored_at__isnull=True).update(score=card,
                                                                                    scored_at=timezone.now()):
            wp = candidate.round.wp
            record_wp_entry(wp, actor=SYSTEM, transition=f"{wp.code}:candidate_scored",
                            metadata={"round": candidate.round_id, "candidate": candidate.index, "score": card},
                            subject=candidate_event(wp, "scored"),
                            payload={"feature_slug": wp.feature.slug, "round": candidate.round_id,
                                     "candidate": candidate.index, "job_id": job_id, "passed": card["passed"]})
    decide(candidate.round_id)
    return Candidate.objects.get(pk=candidate.pk)


def decide(round_id: int) -> CandidateRound:
    """Step 3: choose, when the quorum allows; then settle (outside the lock)."""
    with transaction.atomic():
        rnd = CandidateRound.objects.select_for_update().select_related("wp__feature").get(pk=round_id)
        if rnd.state == CandidateRound.RUNNING:
            choose(rnd, list(rnd.candidates.select_related("job")))
    if rnd.state != CandidateRound.RUNNING:
        settle(rnd.pk)
    return rnd


def choose(rnd: CandidateRound, candidates: list[Candidate]) -> None:
    scored = [c for c in candidates if c.scored_at]
    passing = [c for c in scored if c.score.get("passed")]
    now = timezone.now()
    if passing and rnd.first_pass_at is None:
        rnd.first_pass_at = now
        rnd.save(update_fields=["first_pass_at"])
    everyone = len(scored) == len(candidates)
    waited = rnd.first_pass_at is not None and now >= rnd.first_pass_at + dt.timedelta(seconds=rnd.grace_seconds)
    ready = {CandidateRound.FIRST_PASS: bool(passing),
             CandidateRound.BEST_OF_FINISHED: bool(passing) and (everyone or waited),
             CandidateRound.ALL: everyone}[rnd.quorum] or everyone
    if not ready:
        return
    ranked = sorted(scored, key=lambda c: scoring.rank_key(c.score), reverse=True)
    for rank, candidate in enumerate(ranked, 1):
        Candidate.objects.filter(pk=candidate.pk).update(rank=rank)
    winner = ranked[0] if passing else None
    rnd.state = CandidateRound.CHOSEN if winner else CandidateRound.NONE_PASSED
    rnd.winner = winner.job if winner else None
    rnd.decided_at = now
    rnd.why = scoring.why_best(winner.score, ranked[1].score if len(ranked) > 1 else None) if winner else ""
    rnd.save(update_fields=["state", "winner", "decided_at", "why"])
    wp = rnd.wp
    cards = {c.index: {"job_id": c.job_id, "harness": c.harness, "rank": rank, "score": c.score}
             for rank, c in enumerate(ranked, 1)}
    unfinished = [c.index for c in candidates if not c.scored_at]
    metadata = {"round": rnd.pk, "quorum": rnd.quorum, "winner": winner.index if winner else None,
                "why": rnd.why, "cards": cards, "stopped": unfinished}
    kind = "chosen" if winner else "none_passed"
    record_wp_entry(wp, actor=SYSTEM, transition=f"{wp.code}:candidate_{kind}", metadata=metadata,
                    subject=candidate_event(wp, kind),
                    payload={"feature_slug": wp.feature.slug, "round": rnd.pk, "winner": metadata["winner"],
                             "job_id": winner.job_id if winner else None, "why": rnd.why, "stopped": unfinished})


def settle(round_id: int) -> bool:
    """Step 4, idempotent: True once the round's consequences are all done."""
    rnd = CandidateRound.objects.select_related("wp__feature__project", "winner").get(pk=round_id)
    candidates = list(rnd.candidates.select_related("job"))
    for candidate in candidates:
        if candidate.job.state in JobState.ACTIVE and candidate.job_id != rnd.winner_id:
            with contextlib.suppress(IllegalTransition):  # it ended meanwhile
                cancel_job(candidate.job_id, actor=SYSTEM)
    if rnd.state == CandidateRound.CHOSEN:
        promote_winner(rnd, next(c for c in candidates if c.job_id == rnd.winner_id))
    elif rnd.state == CandidateRound.NONE_PASSED:
        block_without_winner(rnd)
    if rnd.state == CandidateRound.RUNNING or not set_aside_others(rnd, candidates):
        return False
    CandidateRound.objects.filter(pk=rnd.pk, settled_at__isnull=True).update(settled_at=timezone.now())
    return True


def promote_winner(rnd: CandidateRound, winner: Candidate) -> None:
    """The winner's commits onto the WP's branch (the one review and the merge read), its job the
    WP's job, the WP to for_review."""
    wp = WorkPackage.objects.select_related("feature__project").get(pk=rnd.wp_id)
    if wp.state != WPState.DOING or winner.outcome == "won":
        return
    project = wp.feature.project
    with repo_lock(project.repo_url):
        path = workspace(project.repo_url)
        head = (winner.job.result or {}).get("head") or git("rev-parse", f"refs/remotes/origin/{winner.branch}",
                                                            cwd=path)
        existing = git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{wp.branch_name}", cwd=path,
                       check=False)
        if existing and existing != head:  # earlier work on the WP's branch is kept under salvage/, not lost
            set_aside_branch(path, wp.branch_name, f"salvage/{wp.branch_name}-before-round-{rnd.pk}")
        if existing != head:  # a retried settle finds it done
            git("push", "--quiet", "origin", f"{head}:refs/heads/{wp.branch_name}", cwd=path)
    with transaction.atomic():
        DispatchJob.objects.filter(pk=winner.job_id).update(branch=wp.branch_name)
        Candidate.objects.filter(pk=winner.pk).update(outcome="won")
        transition_wp(wp, WPState.FOR_REVIEW, actor=f"agent:{winner.harness}",
                      metadata={"job_id": winner.job_id, "candidate": winner.index, "round": rnd.pk,
                                "commits": (winner.job.result or {}).get("commits", 0),
                                "files_changed": (winner.job.result or {}).get("files_changed", 0)})


def block_without_winner(rnd: CandidateRound) -> None:
    wp = WorkPackage.objects.get(pk=rnd.wp_id)
    if wp.state in (WPState.DOING, WPState.PLANNED):
        transition_wp(wp, WPState.BLOCKED, actor=SYSTEM,
                      metadata={"reason": "no_candidate_passed", "round": rnd.pk},
                      event_extra={"reason": "no_candidate_passed"})


def set_aside_others(rnd: CandidateRound, candidates: list[Candidate]) -> bool:
    """The other candidates' branches under ``salvage/`` on the origin, once each has ended."""
    done = True
    project = rnd.wp.feature.project
    for candidate in candidates:
        if candidate.job_id == rnd.winner_id or candidate.salvage_ref:
            continue
        job = DispatchJob.objects.get(pk=candidate.job_id)
        if job.state not in JobState.FINAL:
            done = False  # still stopping: the next call sets it aside
            continue
        passed = bool(candidate.scored_at and candidate.score.get("passed"))
        outcome = "lost" if passed else ("stopped" if job.state == JobState.CANCELLED or not candidate.scored_at
                                         else "failed")
        salvage = f"salvage/{candidate.branch}"
        try:
            with repo_lock(project.repo_url):
                moved = set_aside_branch(workspace(project.repo_url), candidate.branch, salvage)
        except (DomainError, GitError) as exc:
            log.warning("candidate %s of round %s: branch not set aside: %s", candidate.index, rnd.pk, exc)
            done = False
            continue
        Candidate.objects.filter(pk=candidate.pk).update(outcome=outcome, salvage_ref=salvage if moved else "-")
    return done


def grace_left(round_id: int) -> float | None:
    """Seconds until a best_of_finished round's grace runs out (its decision is due then), or None."""
    rnd = CandidateRound.objects.filter(pk=round_id).first()
    if rnd is None or rnd.state != CandidateRound.RUNNING or rnd.quorum != CandidateRound.BEST_OF_FINISHED \
            or rnd.first_pass_at is None:
        return None
    due = rnd.first_pass_at + dt.timedelta(seconds=rnd.grace_seconds)
    return max(0.0, (due - timezone.now()).total_seconds())


def reconcile_rounds() -> dict:
    """The reaper's share: score finished candidates nobody scored (a worker lost after its job
    ended), decide rounds whose grace ran out, settle rounds decided but not settled."""
    scored = decided = 0
    for candidate in Candidate.objects.filter(round__state=CandidateRound.RUNNING, scored_at__isnull=True,
                                              job__state__in=JobState.FINAL):
        score_candidate(candidate.job_id)
        scored += 1
    for rnd in CandidateRound.objects.filter(settled_at__isnull=True).only("pk", "state"):
        if rnd.state == CandidateRound.RUNNING:
            decide(rnd.pk)
            decided += 1
        else:
            settle(rnd.pk)
    return {"scored": scored, "decided": decided}

