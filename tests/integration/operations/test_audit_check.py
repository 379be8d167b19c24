"""The audit chains verified on beat's schedule: a chain that no longer verifies is an event
(``agileplus.audit.<feature>.verify_failed``) and a webhook, once, not at every check."""

from __future__ import annotations

import pytest
from django.db import connection

from agileplus.features.services import transition_wp
from agileplus.operations import audit_check, webhooks
from tests.factories import make_feature_with_wps

pytestmark = [pytest.mark.django_db, pytest.mark.database]


def test_a_chain_that_no_longer_verifies_is_told_once_through_its_webhook_subject(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    webhooks.add_endpoint("ops", "http://127.0.0.1:9/hook", ["audit.verify_failed"])
    feature, (wp,) = make_feature_with_wps(1)
    transition_wp(wp, "doing", actor="agent:codex")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET actor = %s", ["human:mallory"])
    failing = audit_check.check_all()
    assert list(failing) == [feature.slug] and audit_check.check_all() == failing
    assert webhooks.fan_out() == 1
