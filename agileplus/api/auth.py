"""Token authentication that loads the caller's role in the same query, and refuses malformed
keys before they reach the database."""

from __future__ import annotations

import re

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

KEY_RE = re.compile(r"^[0-9a-f]{40}$")


class RoleTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        if not KEY_RE.match(key or ""):
            raise exceptions.AuthenticationFailed("Invalid token.")
        model = self.get_model()
        token = model.objects.select_related("user", "user__api_role").filter(key=key).first()
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
