"""Dashboard pages: thin views over dashboard.selectors; updates arrive by SSE."""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from agileplus.core.errors import NotFound
from agileplus.dashboard import details, farm, selectors
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


@login_required
def dag(request: HttpRequest, slug: str) -> HttpResponse:
    feature = _feature(slug)
    return render(request, "dashboard/dag.html", {"feature": feature, **selectors.dag_view(feature)})


@login_required
def dag_svg(request: HttpRequest, slug: str) -> HttpResponse:
    """The drawn graph alone, swapped in when one of the feature's events arrives."""
    feature = _feature(slug)
    return render(request, "dashboard/_dag.html", {"feature": feature, **selectors.dag_view(feature)})


@login_required
def wp(request: HttpRequest, slug: str, code: str) -> HttpResponse:
    feature = _feature(slug)
    try:
        context = details.wp_detail(feature, code, request.user)
    except NotFound:
        raise Http404(f"{slug} has no work package {code}") from None
    return render(request, "dashboard/wp.html", {"feature": feature, **context})


@login_required
def job(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        context = details.job_detail(job_id, request.user, raw=request.GET.get("raw") == "1")
    except NotFound:
        raise Http404(f"no job {job_id}") from None
    return render(request, "dashboard/job.html", context)


def _hours(request: HttpRequest) -> float:
    """The timeline's window (?hours=, 0.1 to 168; anything else is the default)."""
    try:
        return min(max(float(request.GET.get("hours", "2")), 0.1), 168.0)
    except ValueError:
        return 2.0


@login_required
def timeline(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/timeline.html", {"t": farm.timeline(hours=_hours(request))})


@login_required
def timeline_svg(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/_timeline.html", {"t": farm.timeline(hours=_hours(request))})


@login_required
def farm_page(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/farm.html", farm.farm_view())
