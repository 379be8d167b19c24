"""Who a caller is, and what its role lets it do.

Every API user has one role, stored in ``ApiRole`` (one row per user; a user without a row is
``admin`` if a superuser, else ``human``). Tokens are issued with
``python manage.py api_token USER --role ROLE [--agent HARNESS]`` (``create_api_token``).

Every role may read every GET endpoint. Writes:

=============  =====  ======================  ==  =====
action         human  agent                   ci  admin
=============  =====  ======================  ==  =====
transition     yes    own WP, never to done   yes yes
move (merge)   yes    no                      yes yes
implement      yes    no                      yes yes
review         yes    no                      yes yes
cancel job     yes    own job                 yes yes
report on job  yes    own job                 no  yes
tokens         no     no                      no  yes
=============  =====  ======================  ==  =====

``implement`` covers a fresh start too (``fresh``: the WP's branch set aside under salvage/, a new
one from main): no agent may start a WP over.

"Own" means the job the agent runs: a per-job token (minted by the worker when the job starts,
revoked when it ends, ``AGILEPLUS_TOKEN`` in the agent's environment) acts only on its job and that
job's WP while the job is held; a standing agent token only on a job of its harness that is held
(queued/claimed/running), never on a finished job or a WP nobody of its harness is running.
Approving (→ done) is also refused by the domain itself for agent actors (``Actor.may_approve``).

Every door calls the same functions: ``caller_for_user`` / ``caller_for_actor``, then
``ensure_may`` (the table), ``ensure_owns_wp`` and ``ensure_owns_job`` — the REST views, the MCP
tools (stdio and HTTP), the SSE endpoints (authentication) and, through REST, the remote CLI.

The actor written into the audit chain always comes from here, never from a request body:
``human:<username>``, ``agent:<agent name>``, ``ci:<username>``; an admin acts as ``human:<username>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.permissions import SAFE_METHODS, BasePermission

from agileplus.core.actors import Actor
from agileplus.core.errors import PermissionDenied
from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.dispatch.selectors import latest_job

HUMAN, AGENT, CI, ADMIN = "human", "agent", "ci", "admin"
ROLES = (HUMAN, AGENT, CI, ADMIN)

MAY = {
    "transition": {HUMAN, AGENT, CI, ADMIN},
    "move": {HUMAN, CI, ADMIN},
    "implement": {HUMAN, CI, ADMIN},
    "review": {HUMAN, CI, ADMIN},
    "cancel": {HUMAN, AGENT, CI, ADMIN},
    "report": {HUMAN, AGENT, ADMIN},
    "tokens": {ADMIN},
    "metrics": {HUMAN, CI, ADMIN},  # /metrics (agileplus/operations/views.py): no agent reads the farm's figures
}

WORDS = {"transition": "transition work packages", "move": "move work packages (merge)",
         "implement": "dispatch agents", "review": "review work packages", "cancel": "cancel jobs",
         "report": "report on jobs", "tokens": "create tokens"}


def role_of(user) -> str:
    if user is None or not user.is_authenticated:
        return ""
    try:
        return user.api_role.role
    except AttributeError:
        # a user without an ApiRole row (RelatedObjectDoesNotExist is an AttributeError)
        return ADMIN if user.is_superuser else HUMAN


def actor_for_user(user) -> Actor:
    role = role_of(user)
    if role == AGENT:
        return Actor("agent", user.api_role.agent or user.username)
    if role == CI:
        return Actor("ci", user.username)
    return Actor("human", user.username)


@dataclass(frozen=True)
class Caller:
    """Who is calling, whatever the door: the actor for the audit chain, the role for the table,
    and for a per-job agent token the one job it may act on."""

    actor: Actor
    role: str
    job_id: str = ""


def caller_for_user(user) -> Caller:
    role = role_of(user)
    job_id = user.api_role.job_id if role == AGENT else ""
    return Caller(actor_for_user(user), role, job_id)


def caller_for_actor(actor: Actor) -> Caller:
    """A local caller named by its actor (``agileplus mcp --actor agent:claude-code``)."""
    return Caller(actor, {"agent": AGENT, "ci": CI}.get(actor.kind, HUMAN))


def ensure_may(caller: Caller, action: str) -> None:
    """The role table (``MAY``): refuse a write the caller's role does not allow."""
    if caller.role not in MAY.get(action, set()):
        allowed = ", ".join(r for r in ROLES if r in MAY.get(action, set())) or "nobody"
        raise PermissionDenied(f"a {caller.role or 'anonymous'} caller may not {WORDS.get(action, action or 'write')}",
                               field="role", fix=f"use a token with role {allowed}")


class RolePermission(BasePermission):
    """Reads for every authenticated caller; a write only for the roles of the view's ``action_name``."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 (no or bad credentials)
        if request.method in SAFE_METHODS or not hasattr(view, request.method.lower()):
            return True  # reads; or a method the view lacks, which DRF answers with 405
        ensure_may(caller_for_user(request.user), getattr(view, "action_name", ""))
        return True


def _runs(caller: Caller, job) -> bool:
    if job is None or job.harness != caller.actor.name or job.state not in JobState.HELD + (JobState.QUEUED,):
        return False
    return not caller.job_id or job.id == caller.job_id


def ensure_owns_job(caller: Caller, job) -> None:
    """An agent acts only on the job it runs (its per-job token's job, or a live job of its harness)."""
    if caller.role == AGENT and not _runs(caller, job):
        raise PermissionDenied(f"{caller.actor} may not act on {job.id} ({job.harness}): only on the job it runs",
                               field="job", fix="use the token the worker gave the agent running this job")


def ensure_owns_wp(caller: Caller, wp) -> None:
    """An agent moves only the WP of the job it runs, while that job runs."""
    if caller.role != AGENT:
        return
    job = DispatchJob.objects.filter(pk=caller.job_id).first() if caller.job_id else latest_job(wp)
    if job is None or job.wp_id != wp.pk or not _runs(caller, job):
        raise PermissionDenied(f"{caller.actor} may not move {wp.code}: only the work package of the job it runs",
                               field="wp",
                               fix="only the agent running this WP's job (or a person) may move it")
