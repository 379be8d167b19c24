"""API services: tokens with roles (see ``agileplus.api.roles`` for what each role may do), and
dispatching several WPs at once."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth import authenticate, get_user_model
from django.db import transaction

from agileplus.api.models import ApiRole
from agileplus.api.roles import AGENT, ROLES, role_of
from agileplus.api.tokens import issue_token
from agileplus.core.actors import Actor
from agileplus.core.errors import DomainError
from agileplus.dispatch.services import enqueue_job
from agileplus.features.models import Feature
from agileplus.features.services import get_wp, normalize_wp_code

# Usernames and agent names become actors (kind:name), so they follow the actor grammar.
USERNAME_RE = re.compile(r"^[A-Za-z0-9._@+\-]{1,100}$")
AGENT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

__all__ = ["ROLES", "BadCredentials", "IssuedToken", "create_api_token", "dispatch_wps", "obtain_token"]


def create_api_token(username: str, role: str, agent: str | None = None) -> str:
    """Create (or rotate) the token of ``username`` with ``role``; returns the key, shown once.

    The user is created if needed (without a password: it signs in with the token only)."""
    agent = agent or ""
    if role not in ROLES:
        raise DomainError(f"unknown role '{role}'", field="role", fix=f"use one of {', '.join(ROLES)}")
    if not USERNAME_RE.match(username or ""):
        raise DomainError(f"'{username}' is not a usable username", field="username",
                          fix="1-100 characters: letters, digits and . _ @ + -")
    if role == AGENT and not agent:
        raise DomainError("an agent token needs the harness it acts as", field="agent",
                          fix="pass agent, e.g. claude-code")
    if agent and role != AGENT:
        raise DomainError("only an agent token names a harness", field="agent", fix="drop agent, or use role agent")
    if agent and not AGENT_RE.match(agent):
        raise DomainError(f"'{agent}' is not a harness name", field="agent", fix="e.g. claude-code")
    with transaction.atomic():
        user, _ = get_user_model().objects.get_or_create(username=username)
        ApiRole.objects.update_or_create(user=user, defaults={"role": role, "agent": agent})
        return issue_token(user)


class BadCredentials(DomainError):
    code = "authentication_failed"
    http_status = 401
    exit_code = 5


@dataclass(frozen=True)
class IssuedToken:
    username: str
    role: str
    token: str


def obtain_token(username: str, password: str) -> IssuedToken:
    """A new token for a person's username and password. Only the digest of a token is stored, so an
    existing one cannot be handed out again: logging in replaces it."""
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise BadCredentials("wrong username or password", field="password",
                             fix="check them, or ask an admin for a token")
    return IssuedToken(user.username, role_of(user), issue_token(user))


def dispatch_wps(feature: Feature, codes: list[str], *, harness: str | None, actor: Actor,
                 timeout_seconds: int | None = None, retries: int | None = None) -> list:
    """`implement --wp` for several WPs at once: every job is queued, or (on the first refusal) none."""
    with transaction.atomic():
        return [enqueue_job(get_wp(feature, code), harness=harness, actor=actor, timeout_seconds=timeout_seconds,
                            retries=retries)
                for code in dict.fromkeys(normalize_wp_code(c) for c in codes)]
