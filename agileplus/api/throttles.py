"""Rate limits (DRF ScopedRateThrottle), read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` at
request time, so ``override_settings`` and the environment (``AGILEPLUS_API_WRITE_RATE``,
``AGILEPLUS_API_AUTH_RATE``) take effect without redefining classes.

Scopes:

- ``write``: every POST, per user (or per address when anonymous).
- ``auth``: per address: every login attempt (``POST /api/auth/token``, the dashboard's and the
  admin's login forms) and every request with a bad token. Past the limit, those get 429 instead
  of 401. (A request with a valid token is not held back: tokens are 160 random bits, so the
  budget guards passwords, not tokens.)

One policy for every door: the REST API, the login forms and MCP over HTTP (``mcp_server``: a
bad token, and each call of a write tool) all count through ``auth_wait`` and ``write_wait``.
The address is the peer's (``X-Forwarded-For`` only through ``AGILEPLUS_API_TRUSTED_PROXIES``
proxies): a guesser cannot buy a fresh budget by sending another header.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle


def rate_for(scope: str) -> str | None:
    return (api_settings.DEFAULT_THROTTLE_RATES or {}).get(scope)


class ScopedThrottle(ScopedRateThrottle):
    """ScopedRateThrottle on unsafe methods only, with rates looked up per request."""

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)

    def get_rate(self) -> str | None:
        return rate_for(self.scope)


class AuthFailureThrottle(SimpleRateThrottle):
    """One failed authentication, counted against the ``auth`` budget of the caller's address
    (the same cache key as the ``auth`` scope of the login endpoint)."""

    scope = "auth"

    def get_rate(self) -> str | None:
        return rate_for(self.scope)

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class _WriteScope:
    throttle_scope = "write"


def auth_wait(request) -> float | None:
    """Count one failed authentication (or login attempt) against the ``auth`` budget of the
    caller's address: None within it, else the seconds to wait."""
    guard = AuthFailureThrottle()
    return None if guard.allow_request(request, None) else float(guard.wait() or 1.0)


def write_wait(request) -> float | None:
    """Count one write (an unsafe ``request.method``) against the ``write`` budget of
    ``request.user`` (or of the address, when anonymous): None within it, else the seconds to wait."""
    guard = ScopedThrottle()
    return None if guard.allow_request(request, _WriteScope()) else float(guard.wait() or 1.0)


def retry_after(wait: float) -> int:
    """The whole seconds a ``Retry-After`` header says for ``wait``."""
    return int(wait) + 1


def throttle_logins(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A login form (the dashboard's, the admin's) under the same policy as ``POST /api/auth/token``:
    every POST counts against the ``auth`` budget of the caller's address (shared with the token
    endpoint, so switching doors does not buy more guesses); past it, 429 with Retry-After."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        waited = auth_wait(request) if request.method == "POST" else None
        if waited is not None:
            wait = retry_after(waited)
            response = HttpResponse(f"Too many login attempts from your address: retry in {wait}s.\n",
                                    status=429, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(wait)
            return response
        return view(request, *args, **kwargs)
    return guarded
