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

"Own" means the job's harness is the agent's harness (the WP's latest job, for transitions).
Approving (→ done) is also refused by the domain itself for agent actors (``Actor.may_approve``).

The actor written into the audit chain always comes from here, never from a request body:
``human:<username>``, ``agent:<agent name>``, ``ci:<username>``; an admin acts as ``human:<username>``.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from agileplus.core.actors import Actor
from agileplus.core.errors import PermissionDenied

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


class RolePermission(BasePermission):
    """Reads for every authenticated caller; a write only for the roles of the view's ``action_name``."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 (no or bad credentials)
        if request.method in SAFE_METHODS or not hasattr(view, request.method.lower()):
            return True  # reads; or a method the view lacks, which DRF answers with 405
        action = getattr(view, "action_name", "")
        role = role_of(request.user)
        if role not in MAY.get(action, set()):
            allowed = ", ".join(r for r in ROLES if r in MAY.get(action, set())) or "nobody"
            raise PermissionDenied(f"a {role} token may not {WORDS.get(action, action or 'write')}",
                                   field="role", fix=f"use a token with role {allowed}")
        return True


def ensure_owns_job(actor: Actor, job) -> None:
    """An agent acts only on the jobs of its own harness."""
    if actor.kind == "agent" and job.harness != actor.name:
        raise PermissionDenied(f"{actor} may only act on its own jobs, not {job.id} ({job.harness})",
                               field="job", fix="use the token of the agent that runs this job")


def ensure_owns_wp(actor: Actor, latest_job) -> None:
    """An agent moves only the WP its harness works on (the WP's latest job)."""
    if actor.kind == "agent" and (latest_job is None or latest_job.harness != actor.name):
        raise PermissionDenied(f"{actor} may only move the work package it works on", field="wp",
                               fix="only the agent running this WP's job (or a person) may move it")
