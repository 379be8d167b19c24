"""API services: a person's token from a username and password, and dispatching several WPs at
once. Creating and revoking tokens (a job's included) is ``agileplus.api.tokens``, re-exported here."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import authenticate
from django.db import transaction

from agileplus.api.roles import ROLES, role_of
from agileplus.api.tokens import create_api_token, issue_token, mint_job_token, revoke_api_token, revoke_job_token
from agileplus.core.actors import Actor
from agileplus.core.errors import DomainError
from agileplus.dispatch.services import enqueue_job
from agileplus.features.models import Feature
from agileplus.features.services import get_wp, normalize_wp_code

__all__ = ["ROLES", "BadCredentials", "IssuedToken", "create_api_token", "dispatch_wps", "mint_job_token",
           "obtain_token", "revoke_api_token", "revoke_job_token"]


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
