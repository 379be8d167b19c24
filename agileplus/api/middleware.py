"""Request limits, checked before anything reads the body or authenticates the caller: a body
over ``API_MAX_BODY_BYTES`` is a 413 and JSON nested deeper than ``API_MAX_JSON_DEPTH`` a 400,
both in the API's one error shape. Without them a 10 MB body or a 100,000-deep array reached
the JSON parser (a RecursionError, a 500), anonymously too (``/api/auth/token``)."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from agileplus.api.errors import error_body

# A JSON string (skipped whole, so brackets inside it do not count) or one bracket.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def max_body_bytes() -> int:
    return settings.API_MAX_BODY_BYTES


def max_json_depth() -> int:
    return settings.API_MAX_JSON_DEPTH


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when ``body`` nests arrays/objects deeper than ``limit`` (it is not parsed)."""
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _too_large(limit: int) -> JsonResponse:
    return JsonResponse(error_body("too_large", f"the request body is larger than {limit} bytes", field="body",
                                   fix="send a smaller body (split the request)"), status=413)


class RequestLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = self.refusal(request)
        return refused if refused is not None else self.get_response(request)

    def refusal(self, request: HttpRequest) -> JsonResponse | None:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        limit = max_body_bytes()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse(error_body("invalid", "Content-Length is not a number", field="Content-Length"),
                                status=400)
        if declared > limit:
            return _too_large(limit)
        if "json" not in (request.content_type or ""):
            return None
        try:
            body = request.body  # read once here (at most DATA_UPLOAD_MAX_MEMORY_SIZE); views reuse it
        except RequestDataTooBig:
            return _too_large(limit)
        if len(body) > limit:
            return _too_large(limit)
        depth = max_json_depth()
        if json_depth_exceeds(body, depth):
            return JsonResponse(error_body("too_deep", f"the JSON body nests deeper than {depth} levels",
                                           field="body", fix=f"send at most {depth} levels of arrays and objects"),
                                status=400)
        return None
