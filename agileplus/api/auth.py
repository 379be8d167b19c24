"""Token authentication (DRF's ``Authorization: Token <key>``) against the stored digests of the
keys (``agileplus.api.tokens``), loading the caller's role in the same query and refusing
malformed keys before they reach the database."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from agileplus.api.tokens import token_for_key


class RoleTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        token = token_for_key(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        role = getattr(token.user, "api_role", None)
        if role is not None and role.expires_at is not None and role.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed("Token expired.")
        return token.user, token


def user_for_token_header(header: str):
    """The active user of an ``Authorization: Token <key>`` header, or None: the same checks as
    the REST API, for the entry points outside DRF (SSE, MCP over HTTP)."""
    if not header.startswith("Token "):
        return None
    try:
        user, _token = RoleTokenAuthentication().authenticate_credentials(header[6:].strip())
    except exceptions.AuthenticationFailed:
        return None
    return user
