"""The SSE endpoint: thin, async, bounded in clients, authenticated."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse

from agileplus.api.auth import user_for_token_header
from agileplus.dispatch.models import DispatchJob
from agileplus.events.sse import event_stream, job_log_stream, last_event_id

_clients = asyncio.Semaphore(settings.SSE_MAX_CLIENTS)


def _error(status: int, code: str, message: str, field: str | None = None, fix: str | None = None) -> JsonResponse:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    if fix:
        body["fix"] = fix
    return JsonResponse({"error": body}, status=status)


def _authenticate(request: HttpRequest):
    """Session login (dashboard) or `Authorization: Token …` (bots, CLI), checked by the API's own
    token authentication (one path: expiry and revocation of per-job tokens apply here too)."""
    user = request.user if request.user.is_authenticated else None
    if user is None:
        user = user_for_token_header(request.headers.get("Authorization", ""))
    return user


def _job_exists(job_id: str) -> bool:
    return DispatchJob.objects.filter(pk=job_id).exists()


def _resume_point(request: HttpRequest) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or request.GET.get("after")
    if raw is None or raw == "":
        return None
    if not str(raw).isdigit():
        raise ValueError(raw)
    return int(raw)


async def stream(request: HttpRequest, feature_slug: str | None = None):
    user = await sync_to_async(_authenticate)(request)
    if user is None:
        return _error(401, "not_authenticated", "log in or send `Authorization: Token <key>`")
    try:
        after = _resume_point(request)
    except ValueError:
        return _error(400, "invalid", "Last-Event-ID must be an event id (a whole number)", field="Last-Event-ID")
    if _clients.locked():
        return _error(503, "too_many_clients", f"the event stream serves at most {settings.SSE_MAX_CLIENTS} clients",
                      fix="retry in a few seconds")
    feature_slug = feature_slug or request.GET.get("feature") or None
    pattern = request.GET.get("subject") or None
    if after is None:  # "only new events": new from now, before the headers tell the client it is live
        after = await sync_to_async(last_event_id, thread_sensitive=False)()

    async def body():
        async with _clients:
            async for chunk in event_stream(after, feature_slug=feature_slug, pattern=pattern):
                yield chunk

    response = StreamingHttpResponse(body(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def job_log(request: HttpRequest, job_id: str):
    user = await sync_to_async(_authenticate)(request)
    if user is None:
        return _error(401, "not_authenticated", "log in or send `Authorization: Token <key>`")
    try:
        after = _resume_point(request) or 0
    except ValueError:
        return _error(400, "invalid", "Last-Event-ID must be a log line number", field="Last-Event-ID")
    if not await sync_to_async(_job_exists)(job_id):
        return _error(404, "not_found", f"no job {job_id[:100]}", field="job_id",
                      fix="see `agileplus jobs` (GET /api/jobs)")
    response = StreamingHttpResponse(job_log_stream(job_id, after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response
