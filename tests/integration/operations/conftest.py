"""Webhooks in these tests go to a receiver on loopback (allowed explicitly), with short backoffs."""

from __future__ import annotations

import pytest

from tests.support.receiver import Receiver


@pytest.fixture
def loopback_webhooks(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.WEBHOOK_BACKOFF_SECONDS = 0.05
    settings.WEBHOOK_MAX_BACKOFF_SECONDS = 0.2
    settings.WEBHOOK_MAX_ATTEMPTS = 4
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    return settings


@pytest.fixture
def receiver():
    found = Receiver().start()
    yield found
    found.stop()
