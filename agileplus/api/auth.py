"""Token authentication (DRF's ``Authorization: Token <key>``) against the stored digests of the
keys (``agileplus.api.tokens``), loading the caller's role in the same query and refusing
malformed keys before they reach the database."""

from __future__ import annotations

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
        return token.user, token
