"""Webhooks: endpoints configured by an operator, fed from the event outbox, signed, retried.

The outbox is the source: ``fan_out`` reads the events after its cursor (``OutboxCursor``) and
writes one ``WebhookDelivery`` per endpoint that chose the event's notification subject
(``notifications.SUBJECTS``), its body rendered once. ``deliver_due`` posts each due delivery;
a 2xx answer marks it delivered, anything else (an error status, a refused connection, a
timeout) schedules the next attempt after a wait doubling from ``WEBHOOK_BACKOFF_SECONDS``, and
the ``WEBHOOK_MAX_ATTEMPTS``-th failure marks it failed, its last error kept: nothing is lost
without a trace. A thread of beat's process runs both every ``WEBHOOK_POLL_SECONDS``
(``start_deliverer``); claims are conditional updates, so a second deliverer would be harmless.

Each request carries ``X-AgilePlus-Timestamp`` (Unix seconds) and ``X-AgilePlus-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``<timestamp>.<body>`` under the endpoint's secret: the
receiver recomputes it and refuses old timestamps (replays).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Max
from django.utils import timezone

from agileplus.core.errors import DomainError, NotFound
from agileplus.events.models import Event
from agileplus.operations import notifications
from agileplus.operations.models import OutboxCursor, WebhookDelivery, WebhookEndpoint

log = logging.getLogger("agileplus.webhooks")
CURSOR = "webhooks"
USER_AGENT = "AgilePlus-Webhook/1"


# --- configuration -------------------------------------------------------------------------------
def _denied(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    allowed = [ipaddress.ip_network(n, strict=False) for n in settings.WEBHOOK_ALLOWED_NETWORKS]
    if any(ip.version == net.version and ip in net for net in allowed):
        return False
    return not ip.is_global or ip.is_multicast


def check_destination(url: str, *, field: str = "url") -> None:
    """Refuse a URL that is not http(s), has no host, or resolves into a denied address range
    (loopback, private, link-local such as cloud metadata, multicast, reserved) unless that range
    is in AGILEPLUS_WEBHOOK_ALLOWED_NETWORKS."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DomainError(f"'{url}' is not an http(s) URL", field=field,
                          fix="give the receiver's full address, e.g. https://hooks.example.com/agileplus")
    if parts.username or parts.password:
        raise DomainError("a webhook URL may not carry a user or password", field=field,
                          fix="the body is signed with the endpoint's secret instead")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)}
    except (OSError, ValueError) as exc:
        raise DomainError(f"the host of '{url}' cannot be resolved ({exc})", field=field,
                          fix="check the host name") from None
    denied = sorted(a for a in found if _denied(a))
    if denied:
        raise DomainError(f"'{url}' points to {', '.join(denied)}, in a denied address range", field=field,
                          fix="use a public address, or allow that network with AGILEPLUS_WEBHOOK_ALLOWED_NETWORKS "
                              "(e.g. 127.0.0.0/8 for a receiver on this machine)")


def check_subjects(subjects: list[str]) -> list[str]:
    unknown = [s for s in subjects if s not in notifications.SUBJECTS]
    if unknown or not subjects:
        raise DomainError(f"unknown notification subject(s): {', '.join(unknown)}" if unknown
                          else "choose at least one notification subject", field="subjects",
                          fix=f"use some of {', '.join(notifications.SUBJECTS)}")
    return list(dict.fromkeys(subjects))


def add_endpoint(name: str, url: str, subjects: list[str], *, slack: bool = False) -> tuple[WebhookEndpoint, str]:
    """Configure an endpoint; returns it and its secret (shown once)."""
    check_destination(url)
    subjects = check_subjects(subjects)
    secret = secrets.token_hex(32)
    with transaction.atomic():
        if WebhookEndpoint.objects.filter(name=name).exists():
            raise DomainError(f"a webhook named '{name}' exists already", field="name",
                              fix="choose another name, or remove it first")
        latest = Event.objects.aggregate(m=Max("id"))["m"] or 0
        OutboxCursor.objects.get_or_create(name=CURSOR, defaults={"last_event_id": latest})
        endpoint = WebhookEndpoint.objects.create(
            name=name, url=url, secret=secret, subjects=subjects, after_event_id=latest,
            format=WebhookEndpoint.SLACK if slack else WebhookEndpoint.JSON)
    return endpoint, secret


def get_endpoint(name: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(name=name).first()
    if endpoint is None:
        raise NotFound(f"no webhook named '{name}'", field="name", fix="see `agileplus webhooks list`")
    return endpoint


def list_endpoints() -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.order_by("name"))


def remove_endpoint(name: str) -> None:
    """Remove an endpoint; its delivery log stays (named by ``endpoint_name``), what was still
    pending recorded as failed."""
    with transaction.atomic():
        endpoint = get_endpoint(name)
        endpoint.deliveries.filter(state=WebhookDelivery.PENDING).update(
            state=WebhookDelivery.FAILED, last_error="the endpoint was removed before this was delivered")
        endpoint.delete()


# --- fan-out from the outbox --------------------------------------------------------------------
def fan_out(limit: int = 1000) -> int:
    """Write the deliveries owed for the outbox events after the cursor; returns how many."""
    endpoints = list(WebhookEndpoint.objects.filter(enabled=True))
    seen = OutboxCursor.objects.filter(name=CURSOR).values_list("last_event_id", flat=True).first() or 0
    if not endpoints or not Event.objects.filter(pk__gt=seen).exists():
        return 0  # nothing new: no write transaction (on SQLite one takes the database's write lock)
    created = 0
    with transaction.atomic():
        cursor, _ = OutboxCursor.objects.select_for_update().get_or_create(name=CURSOR)
        events = list(Event.objects.filter(pk__gt=cursor.last_event_id).order_by("pk")[:limit])
        rows = [WebhookDelivery(endpoint=endpoint, endpoint_name=endpoint.name, event_id=event.pk, subject=name,
                                body=notifications.render_body(name, event, slack=endpoint.format == endpoint.SLACK),
                                next_attempt_at=timezone.now(), event_created_at=event.created_at)
                for event in events for name in notifications.subjects_of(event)
                for endpoint in endpoints if name in endpoint.subjects and event.pk > endpoint.after_event_id]
        # One delivery per endpoint and event even when an event is two subjects (blocked, budget).
        unique = {(r.endpoint.pk, r.event_id): r for r in reversed(rows)}
        created = len(WebhookDelivery.objects.bulk_create(list(unique.values()), ignore_conflicts=True))
        if events:
            cursor.last_event_id = events[-1].pk
            cursor.save(update_fields=["last_event_id"])
    return created


# --- delivery -----------------------------------------------------------------------------------
def sign(secret: str, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def backoff_seconds(attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt."""
    return min(settings.WEBHOOK_MAX_BACKOFF_SECONDS, settings.WEBHOOK_BACKOFF_SECONDS * 2 ** max(0, attempts - 1))


def _post(client: httpx.Client, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> tuple[int | None, str]:
    """One attempt: (status, error); status None when no answer came."""
    try:
        check_destination(endpoint.url)  # again at send time: a name may resolve elsewhere now
    except DomainError as exc:
        return None, exc.message
    body = delivery.body.encode()
    stamp = int(time.time())
    headers = {"content-type": "application/json", "user-agent": USER_AGENT,
               "x-agileplus-timestamp": str(stamp), "x-agileplus-signature": sign(endpoint.secret, stamp, body),
               "x-agileplus-subject": delivery.subject, "x-agileplus-delivery": str(delivery.pk)}
    try:
        answer = client.post(endpoint.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= answer.status_code < 300:
        return answer.status_code, ""
    return answer.status_code, f"HTTP {answer.status_code}: {answer.text[:300]}"


def attempt(client: httpx.Client, delivery: WebhookDelivery) -> bool:
    """Claim one due delivery (of two deliverers, one wins), post it, record the outcome."""
    now = timezone.now()
    in_flight = now + dt.timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 30)
    claimed = WebhookDelivery.objects.filter(pk=delivery.pk, state=WebhookDelivery.PENDING,
                                             attempts=delivery.attempts).update(
        attempts=delivery.attempts + 1, next_attempt_at=in_flight)
    if not claimed or delivery.endpoint is None:
        return False
    tries = delivery.attempts + 1
    status, error = _post(client, delivery.endpoint, delivery)
    done = WebhookDelivery.objects.filter(pk=delivery.pk, attempts=tries)
    if not error:
        done.update(state=WebhookDelivery.DELIVERED, last_status=status, last_error="", delivered_at=timezone.now())
        return True
    if tries >= settings.WEBHOOK_MAX_ATTEMPTS:
        log.warning("webhook %s: delivery %s failed after %s attempts: %s", delivery.endpoint_name, delivery.pk,
                    tries, error)
        done.update(state=WebhookDelivery.FAILED, last_status=status, last_error=error)
    else:
        done.update(last_status=status, last_error=error,
                    next_attempt_at=timezone.now() + dt.timedelta(seconds=backoff_seconds(tries)))
    return False


def deliver_due(limit: int = 100) -> dict:
    """Post every pending delivery whose time has come. Returns counts."""
    due = list(WebhookDelivery.objects.select_related("endpoint").filter(
        state=WebhookDelivery.PENDING, next_attempt_at__lte=timezone.now()).order_by("next_attempt_at", "id")[:limit])
    delivered = 0
    if due:
        with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False) as client:
            delivered = sum(attempt(client, d) for d in due)
    return {"due": len(due), "delivered": delivered}


def run_once() -> dict:
    """One round: fan out what the outbox holds, then send what is due."""
    return {"queued": fan_out(), **deliver_due()}


def start_deliverer(stop: threading.Event | None = None) -> threading.Thread:
    """The deliverer: a thread of beat's process (exactly one per farm) running ``run_once`` every
    WEBHOOK_POLL_SECONDS. Not a worker task: a farm whose worker slots all run agents for an hour
    would hold its notifications that long."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(settings.WEBHOOK_POLL_SECONDS):
            try:
                run_once()
            except Exception:  # noqa: BLE001 - the database is away: the next round tries again
                log.exception("webhooks: a delivery round failed")
            finally:
                close_old_connections()

    thread = threading.Thread(target=loop, name="webhooks", daemon=True)
    thread.start()
    return thread


def send_test(name: str) -> WebhookDelivery:
    """A test notification to one endpoint, sent now (one attempt, then retried like any other)."""
    endpoint = get_endpoint(name)
    text = f"test notification from AgilePlus to '{endpoint.name}'"
    body = notifications.render_body("test", None, slack=endpoint.format == endpoint.SLACK, text=text)
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, endpoint_name=endpoint.name, subject="test",
                                              body=body, next_attempt_at=timezone.now())
    with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False) as client:
        attempt(client, delivery)
    delivery.refresh_from_db()
    return delivery
