"""API tokens are stored as digests: a reader of the database (an agent that reached the SQLite
file, a backup) learns no token, plain or reversed; the key itself still authenticates with DRF's
`Authorization: Token <key>` header, and tokens issued before the change keep working."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from django.apps import apps
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agileplus.api.services import create_api_token, obtain_token
from tests.support.stored import every_stored_text

pytestmark = [pytest.mark.django_db]


def database_file_bytes() -> bytes:
    """The SQLite database file and its write-ahead log, as an agent reading them would see them."""
    name = Path(connection.settings_dict["NAME"])
    return b"".join(p.read_bytes() for p in (name, Path(f"{name}-wal")) if p.exists())


def status_with(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/features").status_code


@pytest.mark.django_db(transaction=True)  # committed, so in the database file as a reader finds it
def test_the_database_holds_no_api_token_plain_or_reversed(django_user_model):
    django_user_model.objects.create_user("frank", password="a-long-password")
    keys = [create_api_token("root", "admin"), create_api_token("bot", "agent", "claude-code"),
            obtain_token("frank", "a-long-password").token]

    stored = every_stored_text()
    file_bytes = database_file_bytes() if connection.vendor == "sqlite" else b""

    for key in keys:
        assert status_with(key) == 200
        for form in (key, key[::-1]):
            assert form not in stored and form.encode() not in file_bytes


def test_the_stored_digest_is_not_a_usable_token():
    create_api_token("root", "admin")
    digest = Token.objects.get(user__username="root").key

    assert status_with(digest) == 401


def test_a_token_issued_before_hashing_is_migrated_and_keeps_working(django_user_model):
    plain = "0123456789abcdef0123456789abcdef01234567"
    Token.objects.create(user=django_user_model.objects.create_user("old-bot"), key=plain)  # as stored before
    migration = importlib.import_module("agileplus.api.migrations.0002_hash_api_tokens")

    migration.hash_plain_keys(apps, None)

    assert not Token.objects.filter(key=plain).exists() and plain not in every_stored_text()
    assert status_with(plain) == 200


def test_logging_in_again_replaces_the_previous_token(django_user_model):
    django_user_model.objects.create_user("gina", password="a-long-password")
    first = obtain_token("gina", "a-long-password").token

    second = obtain_token("gina", "a-long-password").token

    assert first != second and status_with(second) == 200 and status_with(first) == 401


def test_the_admin_lists_whose_tokens_exist_and_cannot_create_one(django_user_model, client):
    create_api_token("ci-bot", "ci")
    client.force_login(django_user_model.objects.create_superuser("root", password="a-long-password"))

    listing = client.get("/admin/authtoken/tokenproxy/")
    adding = client.get("/admin/authtoken/tokenproxy/add/")

    assert listing.status_code == 200 and "ci-bot" in listing.content.decode()
    assert Token.objects.get(user__username="ci-bot").key not in listing.content.decode()
    assert adding.status_code == 403
