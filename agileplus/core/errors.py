"""Domain errors: each names the field at fault and how to fix it.

Every entry point (CLI, API, admin, workers) renders these the same way; none of
them lets a traceback reach a user.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal the user can act on."""

    code = "invalid"
    http_status = 400
    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None, **details: object):
        super().__init__(message)
        self.message = message
        self.field = field
        self.fix = fix
        self.details = details

    def as_dict(self) -> dict:
        body: dict = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.fix:
            body["fix"] = self.fix
        if self.details:
            body["details"] = self.details
        return body

    def __str__(self) -> str:
        text = self.message
        if self.fix:
            text += f" ({self.fix})"
        return text


class NotFound(DomainError):
    code = "not_found"
    http_status = 404
    exit_code = 4


class Conflict(DomainError):
    """Refused because of the current state of things (HTTP 409, exit code 3): a retry after
    the state changes may succeed."""

    code = "conflict"
    http_status = 409
    exit_code = 3


class IllegalTransition(Conflict):
    code = "illegal_transition"


class BlockedByDependency(IllegalTransition):
    code = "blocked_by_dependency"


class StaleState(Conflict):
    code = "stale_state"


class PermissionDenied(DomainError):
    code = "permission_denied"
    http_status = 403
    exit_code = 5


class ImportFailed(DomainError):
    code = "import_failed"
    exit_code = 2


class RepositoryUnavailable(DomainError):
    """The project's origin cannot be cloned or fetched (moved, offline, no permission)."""

    code = "repository_unavailable"
    http_status = 409
    exit_code = 6
