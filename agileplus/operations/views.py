"""``/metrics``: the Prometheus exposition, for an API token of a person, CI or an admin, or
for the addresses in AGILEPLUS_METRICS_ALLOW_FROM (a Prometheus on a trusted network)."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from agileplus.api.errors import error_body
from agileplus.api.tokens import user_for_key
from agileplus.operations import metrics

SCRAPERS = {"human", "ci", "admin"}  # an agent's token reads nothing of the farm's figures


def _allowed_address(request: HttpRequest) -> bool:
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOW_FROM
               if ipaddress.ip_network(net, strict=False).version == peer.version)


def _allowed_token(request: HttpRequest) -> bool:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme not in ("Token", "Bearer"):
        return False
    user = user_for_key(key.strip())
    if user is None:
        return False
    role = getattr(getattr(user, "api_role", None), "role", None) or ("admin" if user.is_superuser else "human")
    return role in SCRAPERS


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not (_allowed_address(request) or _allowed_token(request)):
        return JsonResponse(error_body(
            "not_authenticated",
            "/metrics needs an API token (Authorization: Bearer <key>) of a person, CI or an admin",
            field="Authorization", fix="issue one with `python manage.py api_token USER --role ci`, or list the "
                                       "scraper's network in AGILEPLUS_METRICS_ALLOW_FROM"), status=401)
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
