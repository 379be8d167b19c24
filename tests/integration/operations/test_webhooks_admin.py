"""Webhooks in the admin: an endpoint added there is checked like the CLI's, its secret shown
once; the delivery log is read-only."""

from __future__ import annotations

import pytest

from agileplus.operations.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db
ADD = "/admin/operations/webhookendpoint/add/"


def form(url: str) -> dict:
    return {"name": "ops", "url": url, "subjects": '["wp.blocked"]', "format": "json", "enabled": "on"}


def test_a_denied_url_is_refused_on_its_field(admin_client, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    page = admin_client.post(ADD, form("http://169.254.169.254/latest"))
    assert page.status_code == 200 and "denied address range" in page.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_an_added_endpoint_gets_a_secret_shown_once(admin_client, loopback_webhooks, receiver):
    page = admin_client.post(ADD, form(receiver.url), follow=True)
    endpoint = WebhookEndpoint.objects.get()
    assert f"Secret of ops (shown once): {endpoint.secret}" in page.content.decode()
    change = admin_client.get(f"/admin/operations/webhookendpoint/{endpoint.pk}/change/")
    assert endpoint.secret not in change.content.decode()


def test_the_delivery_log_cannot_be_changed_by_hand(admin_client):
    delivery = WebhookDelivery.objects.create(endpoint_name="ops", subject="wp.blocked", body="{}",
                                              next_attempt_at="2026-01-01T00:00:00Z")
    assert admin_client.get("/admin/operations/webhookdelivery/add/").status_code == 403
    assert admin_client.post(f"/admin/operations/webhookdelivery/{delivery.pk}/delete/").status_code == 403
