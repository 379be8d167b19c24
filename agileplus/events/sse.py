"""Server-Sent Events from the outbox. The row id is the SSE id, so a client that
reconnects with ``Last-Event-ID`` resumes after exactly the last event it saw: ids
become visible in order (outbox inserts are serialized until commit), so there is no
gap and no duplicate."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async

from agileplus.core.subjects import subject_matches
from agileplus.dispatch.models import JobLogLine
from agileplus.events.models import Event

POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 15.0
BATCH = 500


def format_event(event_id: int, name: str | None, data: dict) -> str:
    """One SSE frame. Outbox events use the default type ("message"), so one ``onmessage``
    handler sees every subject; the subject travels in the data."""
    head = f"id: {event_id}\n" + (f"event: {name}\n" if name else "")
    return f"{head}data: {json.dumps(data, default=str)}\n\n"


def _batch(after: int, feature_slug: str | None, pattern: str | None) -> tuple[list[dict], int]:
    """Matching events after ``after`` and the last id looked at (filtered rows advance it too)."""
    qs = Event.objects.filter(pk__gt=after).select_related("feature").order_by("pk")
    if feature_slug:
        qs = qs.filter(feature__slug=feature_slug)
    rows, last = [], after
    for event in qs[:BATCH]:
        last = event.pk
        if pattern and not subject_matches(pattern, event.subject):
            continue
        rows.append(event.as_message())
    return rows, last


def _log_batch(job_id: str, after: int) -> list[dict]:
    return [{"seq": line.seq, "time": line.timestamp.strftime("%H:%M:%S"), "stream": line.stream, "line": line.line}
            for line in JobLogLine.objects.filter(job_id=job_id, seq__gt=after).order_by("seq")[:BATCH]]


async def job_log_stream(job_id: str, after: int = 0, *, max_seconds: float | None = None) -> AsyncIterator[str]:
    """A job's log lines as they are written (id = line seq)."""
    fetch = sync_to_async(_log_batch, thread_sensitive=False)
    yield "retry: 2000\n\n"
    started = last_beat = time.monotonic()
    while max_seconds is None or time.monotonic() - started < max_seconds:
        rows = await fetch(job_id, after)
        for row in rows:
            after = row["seq"]
            yield format_event(row["seq"], "log", row)
        if not rows:
            if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                yield ": heartbeat\n\n"
            await asyncio.sleep(POLL_SECONDS)


def last_event_id() -> int:
    return Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


async def event_stream(after: int | None, *, feature_slug: str | None = None, pattern: str | None = None,
                       max_seconds: float | None = None) -> AsyncIterator[str]:
    """Events after ``after`` (None: only new ones), then live, with heartbeat comments."""
    fetch = sync_to_async(_batch, thread_sensitive=False)
    if after is None:
        after = await sync_to_async(last_event_id, thread_sensitive=False)()
    yield "retry: 2000\n\n"
    started = last_beat = time.monotonic()
    while max_seconds is None or time.monotonic() - started < max_seconds:
        rows, seen = await fetch(after, feature_slug, pattern)
        for row in rows:
            yield format_event(row["id"], None, row)
        moved, after = seen != after, seen
        if moved:
            continue
        if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
            last_beat = time.monotonic()
            yield ": heartbeat\n\n"
        await asyncio.sleep(POLL_SECONDS)
