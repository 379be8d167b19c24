"""`agileplus webhooks add|list|test|remove` and `purge`: thin over the services, errors naming the field."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db


def test_add_prints_the_secret_once_and_list_never_shows_it(loopback_webhooks, receiver):
    added = run_cli(["webhooks", "add", "ops", receiver.url, "--subject", "wp.blocked", "--json"])
    secret = json.loads(added.output)["secret"]
    listed = run_cli("webhooks list --json")
    assert json.loads(listed.output)[0]["subjects"] == ["wp.blocked"] and secret not in listed.output


def test_test_sends_a_signed_notification_now(loopback_webhooks, receiver):
    run_cli(["webhooks", "add", "ops", receiver.url, "--subject", "wp.merged"])
    result = run_cli("webhooks test ops")
    assert result.exit_code == 0 and "Delivered to ops: HTTP 200" in result.output
    assert json.loads(receiver.wait_for(1)[0].body)["subject"] == "test"


def test_a_url_that_is_not_http_is_refused_naming_the_field(db):
    result = run_cli("webhooks add ops ftp://example.com/x --subject wp.blocked")
    assert result.exit_code == 2 and "error [url]" in result.output


def test_remove_of_an_unknown_webhook_names_the_fix(db):
    result = run_cli("webhooks remove nobody")
    assert result.exit_code == 4 and "agileplus webhooks list" in result.output


def test_purge_dry_run_says_what_it_would_delete(db, settings):
    settings.RETENTION_SALVAGE_DAYS = 0
    result = run_cli("purge --dry-run --json")
    assert result.exit_code == 0 and json.loads(result.output)["job_log_lines"] == 0
