"""Webhooks: what happens in the farm reaches a receiver on loopback, signed, and a receiver that
fails or is down gets retries, then either the notification or a recorded failure."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import pytest
from django.utils import timezone

from agileplus.features.services import transition_wp
from agileplus.operations import webhooks
from agileplus.operations.models import WebhookDelivery
from tests.factories import make_feature_with_wps
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.django_db, pytest.mark.database]


def deliver_until(done, timeout: float = 10.0) -> None:
    """Run beat's tick until ``done()``, waiting each time for the next delivery's due time."""
    deadline = time.monotonic() + timeout
    webhooks.fan_out()
    while not done():
        assert time.monotonic() < deadline, "the deliveries did not settle in time"
        webhooks.run_once()
        due = WebhookDelivery.objects.filter(state=WebhookDelivery.PENDING).order_by("next_attempt_at").first()
        if due is not None and not done():
            time.sleep(min(0.5, max(0.0, (due.next_attempt_at - timezone.now()).total_seconds())))


def block_one_wp(reason: str = "tests_failed"):
    feature, (wp,) = make_feature_with_wps(1)
    transition_wp(wp, "blocked", actor="system:agileplus", event_extra={"reason": reason})
    return feature, wp


def only_delivery() -> WebhookDelivery:
    return WebhookDelivery.objects.get()


def test_a_blocked_wp_reaches_the_receiver_signed_over_its_timestamp(loopback_webhooks, receiver):
    _endpoint, secret = webhooks.add_endpoint("ops", receiver.url, ["wp.blocked"])
    feature, wp = block_one_wp()
    webhooks.run_once()
    (got,) = receiver.wait_for(1)
    stamp = got.headers["x-agileplus-timestamp"]
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-agileplus-signature"] == f"sha256={expected}"
    body = json.loads(got.body)
    assert (body["subject"], body["event"]["subject"]) == (
        "wp.blocked", f"agileplus.feature.{feature.slug}.wp.{wp.code}.state.changed")
    assert "tests_failed" in body["text"]


def test_a_wp_blocked_by_its_budget_is_one_delivery_to_an_endpoint_that_chose_both(loopback_webhooks, receiver):
    webhooks.add_endpoint("ops", receiver.url, ["wp.blocked", "budget.reached"])
    block_one_wp("budget_exceeded")
    webhooks.run_once()
    assert receiver.wait_for(1) and only_delivery().state == WebhookDelivery.DELIVERED


def test_an_endpoint_hears_only_its_subjects(loopback_webhooks, receiver):
    webhooks.add_endpoint("merges", receiver.url, ["wp.merged"])
    block_one_wp()
    assert webhooks.run_once()["queued"] == 0
    assert not WebhookDelivery.objects.exists()


def test_events_from_before_the_endpoint_existed_are_not_sent(loopback_webhooks, receiver):
    block_one_wp()
    webhooks.add_endpoint("ops", receiver.url, ["wp.blocked"])
    assert webhooks.run_once()["queued"] == 0


def test_the_slack_format_is_a_text_message(loopback_webhooks, receiver):
    webhooks.add_endpoint("slack", receiver.url, ["wp.blocked"], slack=True)
    feature, wp = block_one_wp()
    webhooks.run_once()
    (got,) = receiver.wait_for(1)
    body = json.loads(got.body)
    assert list(body) == ["text"] and f"{feature.slug} {wp.code} is blocked" in body["text"]


def test_a_receiver_answering_500_is_retried_until_it_accepts(loopback_webhooks):
    failing = Receiver(statuses=[500, 500]).start()
    try:
        webhooks.add_endpoint("ops", failing.url, ["wp.blocked"])
        block_one_wp()
        deliver_until(lambda: only_delivery().state != WebhookDelivery.PENDING)
        failing.wait_for(1)
    finally:
        failing.stop()
    delivery = only_delivery()
    assert (delivery.state, delivery.attempts, failing.answered) == (WebhookDelivery.DELIVERED, 3, [500, 500, 200])


def test_a_receiver_down_for_a_while_gets_the_notification_once_it_is_back(loopback_webhooks):
    later = Receiver()  # its port is chosen, nothing listens yet
    webhooks.add_endpoint("ops", later.url, ["wp.blocked"])
    block_one_wp()
    deliver_until(lambda: only_delivery().attempts >= 2)
    assert "ConnectError" in only_delivery().last_error
    later.start()
    try:
        deliver_until(lambda: only_delivery().state == WebhookDelivery.DELIVERED)
        assert len(later.wait_for(1)) == 1
    finally:
        later.stop()


def test_a_receiver_that_never_accepts_leaves_a_recorded_failure(loopback_webhooks):
    broken = Receiver(statuses=[500] * 10).start()
    try:
        webhooks.add_endpoint("ops", broken.url, ["wp.blocked"])
        block_one_wp()
        deliver_until(lambda: only_delivery().state != WebhookDelivery.PENDING)
    finally:
        broken.stop()
    delivery = only_delivery()
    assert (delivery.state, delivery.attempts, delivery.last_status) == (WebhookDelivery.FAILED, 4, 500)
    assert delivery.last_error.startswith("HTTP 500") and json.loads(delivery.body)["subject"] == "wp.blocked"


def test_removing_an_endpoint_records_what_it_was_still_owed_as_failed(loopback_webhooks, receiver):
    webhooks.add_endpoint("ops", receiver.url, ["wp.blocked"])
    block_one_wp()
    webhooks.fan_out()
    webhooks.remove_endpoint("ops")
    delivery = only_delivery()
    assert (delivery.state, delivery.endpoint_name) == (WebhookDelivery.FAILED, "ops")
    assert "removed" in delivery.last_error


def test_a_loopback_url_is_refused_at_configuration_unless_allowed(settings, receiver):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(webhooks.DomainError) as refused:
        webhooks.add_endpoint("ops", receiver.url, ["wp.blocked"])
    assert refused.value.field == "url" and "AGILEPLUS_WEBHOOK_ALLOWED_NETWORKS" in refused.value.fix


@pytest.mark.django_db(transaction=True)
def test_beats_deliverer_sends_what_was_committed_within_its_poll(loopback_webhooks, receiver):
    loopback_webhooks.WEBHOOK_POLL_SECONDS = 0.05
    webhooks.add_endpoint("ops", receiver.url, ["wp.blocked"])
    stop = threading.Event()
    deliverer = webhooks.start_deliverer(stop)
    try:
        block_one_wp()
        assert json.loads(receiver.wait_for(1)[0].body)["subject"] == "wp.blocked"
    finally:
        stop.set()
        deliverer.join(timeout=10)
