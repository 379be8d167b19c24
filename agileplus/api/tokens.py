"""API tokens are stored as a digest, never as themselves: a reader of the database (or of a
backup, or an agent that reached the file) learns no token. The key is 160 random bits, shown
once when it is issued; the row holds SHA-256 of the key cut to the 40 characters of DRF's
``Token.key`` column, so the ``Authorization: Token <key>`` header and the table stay DRF's.
A random 160-bit key needs no salt or slow hash: there is nothing to guess from its digest.

Creating a token with its role (``create_api_token``), revoking one, and a job's short-lived
agent token (``mint_job_token``, ``revoke_job_token``: the runner's, one per attempt) live here,
below the runner, so that running a job does not reach up into the API's views and services."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from agileplus.api.models import ApiRole
from agileplus.api.roles import AGENT, ROLES
from agileplus.core.errors import DomainError

KEY_RE = re.compile(r"^[0-9a-f]{40}$")


def token_digest(key: str) -> str:
    """What the database holds for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def issue_token(user: AbstractBaseUser) -> str:
    """A new token for ``user`` (replacing any it had); returns the key, which is not stored."""
    key = secrets.token_hex(20)
    Token.objects.filter(user=user).delete()
    Token.objects.create(user=user, key=token_digest(key))
    return key


def token_for_key(key: str) -> Token | None:
    """The token row of a presented key (its user and role loaded), or None."""
    if not KEY_RE.match(key or ""):
        return None
    digest = token_digest(key)
    token = Token.objects.select_related("user", "user__api_role").filter(key=digest).first()
    # The lookup is by digest; the comparison of what was found is constant-time all the same.
    if token is None or not hmac.compare_digest(token.key, digest):
        return None
    return token


def user_for_key(key: str) -> AbstractBaseUser | None:
    """The active user a presented key belongs to, or None."""
    token = token_for_key(key)
    return token.user if token and token.user.is_active else None


# Usernames and agent names become actors (kind:name), so they follow the actor grammar.
USERNAME_RE = re.compile(r"^[A-Za-z0-9._@+\-]{1,100}$")
AGENT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

JOB_TOKEN_MARGIN = dt.timedelta(minutes=5)  # past the job's timeout and grace: setup, push, governance


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


def revoke_api_token(username: str) -> int:
    """Revoke every token of ``username`` (and sign it out for good); returns how many."""
    with transaction.atomic():
        revoked, _ = Token.objects.filter(user__username=username).delete()
        get_user_model().objects.filter(username=username).update(is_active=False)
    return revoked


def job_token_username(job_id: str, attempt: int) -> str:
    # one identity per attempt: a fenced worker revoking its own token leaves the new attempt's alone
    return f"job.{job_id}.{attempt}"[:100]


def mint_job_token(job) -> str:
    """A short-lived agent token for one attempt of one job: it acts only on this job and its WP
    (see roles), and expires after the job's timeout, grace and a margin, or when
    ``revoke_job_token`` is called."""
    username = job_token_username(job.id, job.attempt)
    key = create_api_token(username, AGENT, job.harness)
    expires = timezone.now() + dt.timedelta(seconds=job.timeout_seconds + settings.AGENT_KILL_GRACE_SECONDS)
    ApiRole.objects.filter(user__username=username).update(job_id=job.id, expires_at=expires + JOB_TOKEN_MARGIN)
    get_user_model().objects.filter(username=username).update(is_active=True)
    return key


def revoke_job_token(job_id: str, attempt: int) -> int:
    return revoke_api_token(job_token_username(job_id, attempt))
