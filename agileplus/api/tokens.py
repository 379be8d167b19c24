"""API tokens are stored as a digest, never as themselves: a reader of the database (or of a
backup, or an agent that reached the file) learns no token. The key is 160 random bits, shown
once when it is issued; the row holds SHA-256 of the key cut to the 40 characters of DRF's
``Token.key`` column, so the ``Authorization: Token <key>`` header and the table stay DRF's.
A random 160-bit key needs no salt or slow hash: there is nothing to guess from its digest."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.authtoken.models import Token

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
