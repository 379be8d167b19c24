"""Fixtures the unit tests share."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User


@pytest.fixture
def browser(client):
    """A Django test client signed in as a person, for the dashboard's pages."""
    client.force_login(User.objects.create_user("viewer"))
    return client
