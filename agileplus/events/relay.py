"""The outbox relay: publishes outbox rows to NATS JetStream, in id order, and marks a
row published only after JetStream acknowledged it.

Exactly-once at the consumer rests on three things: the row is written in the change's
transaction (nothing is lost if a process dies), each publish carries
``Nats-Msg-Id: <event msg_id>`` (a re-publish after a crash between ack and mark is
dropped by JetStream's duplicate window, and the PubAck says ``duplicate``), and
consumers de-duplicate by the same id beyond that window. One relay publishes at a
time (a PostgreSQL session advisory lock, or a file lock on SQLite), so order holds;
a second relay waits and takes over when the first dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import time
from collections.abc import Iterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.utils import timezone

from agileplus.core.errors import DomainError
from agileplus.events.models import Event
from agileplus.events.subjects import nats_prefix, on_nats

log = logging.getLogger("agileplus.relay")
RELAY_LOCK_KEY = 0x0A61_2E1A
DUPLICATE_WINDOW_SECONDS = 120


class RelayBusy(DomainError):
    """Another relay holds the one-relay lock."""

    code = "relay_busy"


def relay_lock(*, wait_seconds: float | None, on_wait=None):
    """The one-relay lock: wait for it (for ever with ``wait_seconds=None``), saying so once
    through ``on_wait``; RelayBusy when it is still held after ``wait_seconds``."""
    deadline = None if wait_seconds is None else time.monotonic() + wait_seconds

    @contextlib.contextmanager
    def held() -> Iterator[bool]:
        told = False
        while True:
            with relay_singleton(wait=False) as got:
                if got:
                    yield True
                    return
            if not told and on_wait:
                on_wait()
                told = True
            if deadline is not None and time.monotonic() >= deadline:
                raise RelayBusy("another relay is running and publishes the outbox", field="relay",
                                fix="nothing to do: it publishes every event; stop it first to run this one")
            time.sleep(0.5)

    return held()


@contextlib.contextmanager
def relay_singleton(wait: bool = True) -> Iterator[bool]:
    """Hold the one-relay lock for the life of the block (released if the process dies).
    With ``wait=False`` the block gets False at once when another relay holds it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [RELAY_LOCK_KEY])
                if cursor.fetchone()[0]:
                    break
                if not wait:
                    yield False
                    return

                time.sleep(1)
            try:
                yield True
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [RELAY_LOCK_KEY])
        return
    with open(settings.DATA_DIR / "relay.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def pending(limit: int) -> list[Event]:
    return list(Event.objects.filter(published_at__isnull=True).order_by("pk")[:limit])


def mark_published(event_ids: list[int]) -> None:
    Event.objects.filter(pk__in=event_ids, published_at__isnull=True).update(published_at=timezone.now())


async def ensure_stream(js, name: str, prefix: str = "agileplus") -> None:
    from nats.js.api import StreamConfig

    config = StreamConfig(name=name, subjects=[f"{prefix}.>"], duplicate_window=DUPLICATE_WINDOW_SECONDS)
    try:
        await js.add_stream(config)
    except Exception:  # noqa: BLE001 - exists already: bring its config up to date
        await js.update_stream(config)


async def publish_batch(js, events: list[Event], prefix: str = "agileplus") -> tuple[int, int]:
    """Publish in order; stop at the first failure so order is kept. Returns (published, duplicates)."""
    done, duplicates = [], 0
    try:
        for event in events:
            body = json.dumps({"id": event.pk, "msg_id": str(event.msg_id), "subject": event.subject,
                               "payload": event.payload, "created_at": event.created_at.isoformat()}).encode()
            ack = await js.publish(on_nats(event.subject, prefix), body, headers={"Nats-Msg-Id": str(event.msg_id)})
            duplicates += bool(getattr(ack, "duplicate", False))
            done.append(event.pk)
    finally:
        if done:
            await sync_to_async(mark_published, thread_sensitive=True)(done)
    return len(done), duplicates


async def _quiet(_exc: Exception) -> None:
    """nats-py logs every failed attempt with a traceback; the relay logs one line instead."""


async def run_relay(url: str, *, stream: str | None = None, batch: int = 200, once: bool = False,
                    idle_seconds: float = 0.1, prefix: str | None = None) -> int:
    """Publish until stopped (or until the outbox is empty, with ``once``). Returns events published."""
    import nats

    stream = stream or settings.NATS_STREAM
    prefix = nats_prefix(prefix or settings.NATS_SUBJECT_PREFIX)
    total, backoff = 0, 0.5
    nc = None
    while True:
        try:
            if nc is None or not nc.is_connected:
                # nats-py keeps retrying a refused first connect: bound it ourselves.
                nc = await asyncio.wait_for(
                    nats.connect(url, connect_timeout=2, allow_reconnect=False, error_cb=_quiet), timeout=3)
                js = nc.jetstream(timeout=5)
                await ensure_stream(js, stream, prefix)
                backoff = 0.5
            events = await sync_to_async(pending, thread_sensitive=True)(batch)
            if not events:
                if once:
                    break
                await asyncio.sleep(idle_seconds)
                continue
            published, _dups = await publish_batch(js, events, prefix)
            total += published
        except Exception as exc:  # noqa: BLE001 - NATS down or restarting: events wait in the outbox
            log.warning("relay: NATS unavailable (%s); retrying in %.1fs", exc, backoff)
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            nc = None
            if once:
                raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)
    if nc is not None:
        await nc.close()
    # The executor thread's database connection would otherwise outlive the relay.
    await sync_to_async(close_thread_connection, thread_sensitive=True)()
    return total


def close_thread_connection() -> None:
    # Looked up inside the executor thread: `connection.close` evaluated by the
    # caller would be the event loop thread's connection, not this one.
    connection.close()
