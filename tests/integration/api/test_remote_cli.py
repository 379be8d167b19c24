"""`agileplus` with AGILEPLUS_URL and AGILEPLUS_TOKEN drives a remote farm through its REST API."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agileplus.api.services import create_api_token
from agileplus.audit.models import AuditEntry
from tests.factories import make_feature_with_wps
from tests.support.server import ROOT, running_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def remote(url: str, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "AGILEPLUS_URL": url, "AGILEPLUS_TOKEN": token, "HOME": "/tmp"}
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_cli_moves_a_wp_on_a_remote_farm_as_the_tokens_identity():
    feature, _ = make_feature_with_wps(2)
    token = create_api_token("carol", "human")
    with running_web() as url:
        moved = remote(url, token, "wp", "transition", "WP01", "--feature", feature.slug, "--to", "doing")
        shown = remote(url, token, "status", feature.slug)
        verified = remote(url, token, "events", "audit-verify", "--feature", feature.slug)

    assert moved.returncode == 0, moved.stderr
    assert "WP01: planned → doing (by human:carol)" in moved.stdout
    assert "WP01 Work package 1" in shown.stdout and "doing" in shown.stdout
    assert "✓ Audit chain intact" in verified.stdout
    assert AuditEntry.objects.get(feature=feature, transition="WP01:planned->doing").actor == "human:carol"


def test_a_refusal_on_the_remote_farm_is_one_clear_line_and_an_exit_code():
    feature, _ = make_feature_with_wps(2)
    token = create_api_token("dave", "human")
    with running_web() as url:
        refused = remote(url, token, "wp", "transition", "WP02", "--feature", feature.slug, "--to", "doing")

    assert refused.returncode == 3
    assert "blocked by WP01" in refused.stderr and "Traceback" not in refused.stderr


def test_a_missing_token_says_how_to_get_one():
    result = remote("http://127.0.0.1:9", "", "status")
    assert result.returncode != 0 and "AGILEPLUS_TOKEN" in result.stderr
