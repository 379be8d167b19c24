"""The audit chain can never be edited, so no secret the process holds is ever written into it:
metadata and evidence quoting agent text are redacted before they are hashed, and the chain
verifies. The event of the same change is redacted too."""

from __future__ import annotations

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.events.models import Event
from agileplus.features.services import transition_wp
from tests.factories import make_feature_with_wps

pytestmark = [pytest.mark.django_db]

SECRET = "held-5e0c9b7d1a3f62"


@pytest.fixture(autouse=True)
def worker_holds_the_secret(monkeypatch):
    monkeypatch.setenv("AGILEPLUS_SECRET_DEPLOY", SECRET)


def test_metadata_and_evidence_quoting_a_secret_are_stored_redacted_and_the_chain_verifies():
    feature, (wp,) = make_feature_with_wps(1)

    transition_wp(wp, "doing", actor="agent:command",
                  metadata={"detail": f"agent said {SECRET[::-1]}", "nested": [{"why": SECRET}]},
                  evidence_refs=[{"path": f"secrets/{SECRET}.txt", "rule": "forbidden_path"}],
                  event_extra={"reason": f"quoting {SECRET}"})

    entry = AuditEntry.objects.get(wp=wp, transition="WP01:planned->doing")
    event = Event.objects.get(subject__endswith=".wp.WP01.state.changed")
    assert entry.metadata["detail"] == "agent said ***" and entry.metadata["nested"] == [{"why": "***"}]
    assert entry.evidence_refs == [{"path": "secrets/***.txt", "rule": "forbidden_path"}]
    assert SECRET not in str(event.payload) and SECRET[::-1] not in str(event.payload)
    assert verify_chain(feature).ok
