"""``/metrics``: the Prometheus exposition, for an API token whose role may read it (the roles
table: a person, CI or an admin) or for the addresses in AGILEPLUS_METRICS_ALLOW_FROM (a
Prometheus on a trusted network). Bad tokens count against the same budget as every door's."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from agileplus.api.errors import error_body
from agileplus.api.roles import MAY, caller_for_user
from agileplus.api.throttles import auth_wait, retry_after
from agileplus.api.tokens import user_for_key
from agileplus.operations import metrics


def _allowed_address(request: HttpRequest) -> bool:
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    networks = [ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOW_FROM]
    return any(peer.version == net.version and peer in net for net in networks)


def _token_user(request: HttpRequest):
    """The user of an ``Authorization: Bearer|Token <key>`` header (Prometheus sends Bearer), or None."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return user_for_key(key.strip()) if scheme in ("Token", "Bearer") else None


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if _allowed_address(request):
        return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
    user = _token_user(request)
    if user is not None and caller_for_user(user).role in MAY["metrics"]:
        return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
    if user is None and request.headers.get("Authorization") and (waited := auth_wait(request)) is not None:
        response = JsonResponse(error_body("throttled", "too many bad tokens from your address",
                                           fix=f"retry in {retry_after(waited)}s"), status=429)
        response["Retry-After"] = str(retry_after(waited))
        return response
    return JsonResponse(error_body(
        "not_authenticated" if user is None else "permission_denied",
        "/metrics needs an API token (Authorization: Bearer <key>) of a person, CI or an admin",
        field="Authorization", fix="issue one with `python manage.py api_token USER --role ci`, or list the "
                                   "scraper's network in AGILEPLUS_METRICS_ALLOW_FROM"),
        status=401 if user is None else 403)
