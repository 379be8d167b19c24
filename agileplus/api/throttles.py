"""Rate limits: on writes per user, and on anonymous callers (failed or missing auth) per address."""

from __future__ import annotations

from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class WriteThrottle(UserRateThrottle):
    scope = "write"

    def allow_request(self, request, view) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return super().allow_request(request, view)


class AnonThrottle(AnonRateThrottle):
    scope = "anon"
