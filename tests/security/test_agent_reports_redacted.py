"""Lines an agent reports on its job through the API are agent output like its log: every secret
the serving process holds is redacted from them before they are stored."""

from __future__ import annotations

import base64

import pytest

from agileplus.dispatch.models import JobLogLine
from tests.factories import make_feature_with_wps
from tests.integration.api.conftest import add_job, client_for

pytestmark = [pytest.mark.django_db]

SECRET = "held-7b2e9d4c1a6f30"


def test_a_secret_in_a_line_an_agent_reports_is_stored_redacted(monkeypatch):
    monkeypatch.setenv("AGILEPLUS_SECRET_DEPLOY", SECRET)
    feature, _ = make_feature_with_wps(1)
    job = add_job(feature, "WP01", harness="claude-code")

    response = client_for("agent", agent="claude-code").post(
        f"/api/jobs/{job.id}/log", {"lines": [f"found {base64.b64encode(SECRET.encode()).decode()}"]}, format="json")

    assert response.status_code == 201
    assert JobLogLine.objects.get(job=job).line == "[agent:claude-code] found ***"
