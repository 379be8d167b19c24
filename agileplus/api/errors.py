"""One JSON error shape for every API failure: ``{"error": {"code", "field", "message", "fix"}}``."""

from __future__ import annotations

import logging

from django.core import exceptions as django_exceptions
from django.db import DatabaseError, connection
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from agileplus.api.throttles import retry_after
from agileplus.core.errors import DomainError

log = logging.getLogger("agileplus.api")

CODES = {
    exceptions.NotAuthenticated: ("not_authenticated", "send `Authorization: Token <key>` (agileplus api token)"),
    exceptions.AuthenticationFailed: ("authentication_failed", "check the token; an admin can issue a new one"),
    exceptions.PermissionDenied: ("permission_denied", None),
    exceptions.NotFound: ("not_found", None),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", "ask for application/json"),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", "send Content-Type: application/json"),
    exceptions.Throttled: ("throttled", None),
    exceptions.ParseError: ("parse_error", "send a JSON object"),
}


def error_body(code: str, message: str, *, field: str | None = None, fix: str | None = None,
               details: dict | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if field:
        body["field"] = field
    if fix:
        body["fix"] = fix
    if details:
        body["details"] = details
    return {"error": body}


def _first_field_error(detail, prefix: str = "") -> tuple[str | None, str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else None
            inner_field, message = _first_field_error(value, f"{prefix}{name}." if name else prefix)
            return inner_field or (f"{prefix}{name}" if name else None), message
    if isinstance(detail, list) and detail:
        return _first_field_error(detail[0], prefix)
    return None, str(detail)


def exception_handler(exc, context) -> Response:
    if isinstance(exc, DomainError):
        response = Response({"error": exc.as_dict()}, status=exc.http_status)
        if exc.http_status == status.HTTP_401_UNAUTHORIZED:
            response["WWW-Authenticate"] = "Token"
        return response
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_field_error(exc.detail)
        return Response(error_body("invalid", message, field=field), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, django_exceptions.ValidationError):
        return Response(error_body("invalid", "; ".join(exc.messages)[:500]), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    if isinstance(exc, django_exceptions.PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, exceptions.APIException):
        code, fix = next(((c, f) for cls, (c, f) in CODES.items() if isinstance(exc, cls)), ("error", None))
        if isinstance(exc, exceptions.Throttled) and exc.wait:
            fix = f"retry in {retry_after(exc.wait)}s"
        response = Response(error_body(code, str(exc.detail), fix=fix), status=exc.status_code)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, exceptions.Throttled) and exc.wait:
            response["Retry-After"] = str(retry_after(exc.wait))
        return response
    if isinstance(exc, DatabaseError) and database_unreachable():
        # Nothing was written: the request's transaction never reached the database.
        log.warning("database unreachable in %s: %s", context.get("view"), exc)
        response = Response(error_body("database_unavailable", "the farm's database cannot be reached from this "
                                       "server; nothing was changed", fix="retry in a few seconds; if it persists, "
                                       "check that this server reaches the host in DATABASE_URL"),
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = "5"
        return response
    log.exception("unexpected API error in %s", context.get("view"))
    return Response(error_body("internal", "the server could not complete this request; it has been logged"),
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def database_unreachable() -> bool:
    """Whether a new connection to the database fails now (a lost server, not a bad query)."""
    connection.close()
    try:
        connection.ensure_connection()
    except DatabaseError:
        return True
    return False
