"""Cursor pagination.

- Audit entries, events and job logs: the cursor is the last id seen (``after=<seq|id>``);
  ``next_after`` in each page is the next request's ``after``, so a client resumes where it stopped.
- Jobs (newest first): an opaque keyset cursor over ``(queued_at, id)``, returned as ``next_cursor``.

Each page also carries ``next``: the full URL of the next page (null past the last page of a list).
A malformed cursor is a 400 naming ``cursor``, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param


def next_url(request: Request, **params) -> str:
    url = request.build_absolute_uri()
    for name, value in params.items():
        url = replace_query_param(url, name, value)
    return url


def encode_job_cursor(queued_at: dt.datetime, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{queued_at.isoformat()}|{job_id}".encode()).decode().rstrip("=")


def decode_job_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        stamp, job_id = text.split("|", 1)
        moment = parse_datetime(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        moment, job_id = None, ""
    if moment is None or moment.tzinfo is None or not job_id.isprintable() or len(job_id) > 40:
        raise ValidationError({"cursor": "not a cursor this API issued; start again without one"})
    return moment, job_id


def job_page(request: Request, queryset: QuerySet, *, cursor: str | None, limit: int) -> tuple[list, dict]:
    """One page of jobs, newest first, and its links."""
    queryset = queryset.order_by("-queued_at", "-id")
    if cursor:
        moment, job_id = decode_job_cursor(cursor)
        queryset = queryset.filter(Q(queued_at__lt=moment) | Q(queued_at=moment, id__lt=job_id))
    rows = list(queryset[: limit + 1])
    more, rows = len(rows) > limit, rows[:limit]
    token = encode_job_cursor(rows[-1].queued_at, rows[-1].id) if more else None
    return rows, {"next_cursor": token, "next": next_url(request, cursor=token) if token else None}


def after_page(request: Request, rows: list, *, key, after: int, limit: int, stream: bool = False) -> dict:
    """Links of a page ordered by an increasing integer ``key``.

    A stream (events, a job's log) always has a next position to poll; a list (audit) ends with
    its first short page."""
    last = key(rows[-1]) if rows else after
    if stream:
        return {"next_after": last, "next": next_url(request, after=last)}
    more = len(rows) == limit
    return {"next_after": last if more else None, "next": next_url(request, after=last) if more else None}
