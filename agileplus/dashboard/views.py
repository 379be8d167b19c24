"""Dashboard pages: thin views over dashboard.selectors; updates arrive by SSE."""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from agileplus.core.errors import NotFound
from agileplus.dashboard import selectors
from agileplus.features.services import get_feature


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/index.html", {"features": selectors.overview()})


def _feature(slug: str):
    try:
        return get_feature(slug)
    except NotFound:
        raise Http404(f"no feature {slug}") from None


def _after(request: HttpRequest) -> str:
    """The board page: WPs after this code (anything but a WP-like code is the first page)."""
    after = request.GET.get("after", "")
    return after if re.fullmatch(r"[A-Za-z0-9]{1,20}", after) else ""


@login_required
def feature(request: HttpRequest, slug: str) -> HttpResponse:
    feature = _feature(slug)
    return render(request, "dashboard/feature.html",
                  {"feature": feature, **selectors.board(feature, after=_after(request))})


@login_required
def feature_panel(request: HttpRequest, slug: str) -> HttpResponse:
    """The board fragment the page swaps in when an event arrives (event-driven, no timer)."""
    feature = _feature(slug)
    return render(request, "dashboard/_board.html",
                  {"feature": feature, **selectors.board(feature, after=_after(request))})
