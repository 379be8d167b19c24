"""The webhook rules that need no database: which URLs are refused, how a body is signed,
which events are which notification, how long a retry waits, how old a salvage ref is."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest

from agileplus.core.errors import DomainError
from agileplus.events.models import Event
from agileplus.operations import notifications, webhooks
from agileplus.operations.retention import ref_time


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "example.com/hook", ""])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(DomainError) as refused:
        webhooks.check_destination(url)
    assert refused.value.field == "url"


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.5", "192.168.1.1", "169.254.169.254", "[::1]", "0.0.0.0",
                                  "[::ffff:127.0.0.1]", "100.64.0.1"])
def test_a_url_into_a_denied_range_is_refused(settings, host):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(DomainError, match="denied address range"):
        webhooks.check_destination(f"http://{host}/hook")


def test_a_public_address_is_accepted(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    webhooks.check_destination("https://93.184.215.14/hook")


def test_an_allowed_network_lets_its_addresses_through(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    webhooks.check_destination("http://127.0.0.1:8080/hook")


def test_a_url_with_a_password_is_refused():
    with pytest.raises(DomainError, match="user or password"):
        webhooks.check_destination("https://user:pw@93.184.215.14/hook")


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert webhooks.sign("s3cret", 1700000000, b"{}") == f"sha256={expected}"


def test_the_wait_doubles_per_failure_up_to_its_cap(settings):
    settings.WEBHOOK_BACKOFF_SECONDS, settings.WEBHOOK_MAX_BACKOFF_SECONDS = 2, 10
    assert [webhooks.backoff_seconds(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]


@pytest.mark.parametrize(("subject", "payload", "expected"), [
    ("agileplus.feature.003-auth.wp.WP02.state.changed", {"to": "blocked"}, ["wp.blocked"]),
    ("agileplus.feature.003-auth.wp.WP02.state.changed", {"to": "blocked", "reason": "budget_exceeded"},
     ["wp.blocked", "budget.reached"]),
    ("agileplus.feature.003-auth.wp.WP02.state.changed", {"to": "done"}, ["wp.merged"]),
    ("agileplus.feature.003-auth.wp.WP02.state.changed", {"to": "doing"}, []),
    ("agileplus.feature.003-auth.state.changed", {"to": "shipped"}, ["feature.shipped"]),
    ("agileplus.account.openai:abc.parked", {}, ["account.parked"]),
    ("agileplus.audit.003-auth.verify_failed", {"problems": 1}, ["audit.verify_failed"]),
    ("agileplus.agent.job.j1.completed", {"success": False}, []),
])
def test_events_are_the_notification_subjects_of_the_table(subject, payload, expected):
    assert notifications.subjects_of(Event(subject=subject, payload=payload)) == expected


def test_a_salvage_ref_is_as_old_as_the_time_in_its_name():
    named = ref_time("refs/heads/salvage/003-auth-WP02-20261201-093000")
    assert named == dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    assert ref_time("refs/agileplus/salvage/wt-1764581400") == dt.datetime(2025, 12, 1, 9, 30, tzinfo=dt.UTC)
    assert ref_time("refs/heads/salvage/no-time") is None
