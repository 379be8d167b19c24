"""Every legal transition of both lifecycles is applied, and every illegal one refused with
nothing written, from the CLI and from the admin's changelist actions."""

import pytest
from django.contrib.auth.models import User

from agileplus.audit.models import AuditEntry
from agileplus.features.lifecycles import FEATURE_RULES, WP_RULES, FeatureState, WPState
from agileplus.features.models import Feature, WorkPackage
from tests.factories import FeatureFactory, make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db

WP_LEGAL = sorted((r.source, r.target) for r in WP_RULES)
WP_ILLEGAL = [(a, b) for a in WPState.ALL for b in WPState.ALL if (a, b) not in set(WP_LEGAL)]
FEATURE_LEGAL = sorted((r.source, r.target) for r in FEATURE_RULES)
FEATURE_ILLEGAL = [(a, b) for a in FeatureState.ALL for b in FeatureState.ALL if (a, b) not in set(FEATURE_LEGAL)]


def _wp_in(state):
    feature, (wp,) = make_feature_with_wps(1)
    WorkPackage.objects.filter(pk=wp.pk).update(state=state)
    return feature, wp


def _feature_in(state):
    # A feature without WPs: its state follows no WP, so only the table decides.
    return FeatureFactory(state=state)


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("alice", "alice@example.com", "pw")
    client.force_login(user)
    return client


def _admin_action(client, model, action, pk):
    url = f"/admin/features/{model}/"
    return client.post(url, {"action": action, "_selected_action": [pk]}, follow=True)


# --- CLI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), WP_LEGAL)
def test_cli_applies_every_legal_wp_transition(source, target):
    feature, wp = _wp_in(source)
    result = run_cli(f"wp transition WP01 --to {target} --feature {feature.slug} --actor human:alice --json")
    assert result.exit_code == 0, result.output
    wp.refresh_from_db()
    assert wp.state == target
    assert feature.audit_entries.filter(transition=f"WP01:{source}->{target}", actor="human:alice").count() == 1


@pytest.mark.parametrize(("source", "target"), WP_ILLEGAL)
def test_cli_refuses_every_illegal_wp_transition_with_exit_3(source, target):
    feature, wp = _wp_in(source)
    result = run_cli(f"wp transition WP01 --to {target} --feature {feature.slug} --actor human:alice")
    assert result.exit_code == 3
    assert f"cannot move from {source} to {target}" in result.output
    wp.refresh_from_db()
    assert wp.state == source and not AuditEntry.objects.exists()


@pytest.mark.parametrize(("source", "target"), FEATURE_LEGAL)
def test_cli_applies_every_legal_feature_transition(source, target):
    feature = _feature_in(source)
    result = run_cli(f"feature transition {feature.slug} --to {target} --actor human:alice")
    assert result.exit_code == 0, result.output
    feature.refresh_from_db()
    assert feature.state == target
    assert feature.audit_entries.get().transition == f"{source}->{target}"


@pytest.mark.parametrize(("source", "target"), FEATURE_ILLEGAL)
def test_cli_refuses_every_illegal_feature_transition_with_exit_3(source, target):
    feature = _feature_in(source)
    result = run_cli(f"feature transition {feature.slug} --to {target} --actor human:alice")
    assert result.exit_code == 3
    feature.refresh_from_db()
    assert feature.state == source and not AuditEntry.objects.exists()


def test_cli_finds_the_wp_without_feature_when_its_code_is_unique():
    feature, wp = _wp_in("planned")
    assert run_cli("wp transition wp1 --to doing --actor agent:claude-code").exit_code == 0
    wp.refresh_from_db()
    assert wp.state == "doing"


def test_cli_asks_for_the_feature_when_the_wp_code_is_ambiguous():
    make_feature_with_wps(1)
    make_feature_with_wps(1)
    result = run_cli("wp transition WP01 --to doing --actor human:alice")
    assert result.exit_code == 2 and "--feature" in result.output


def test_cli_names_an_unknown_wp_with_exit_4():
    feature, _ = _wp_in("planned")
    result = run_cli(f"wp transition WP07 --to doing --feature {feature.slug}")
    assert result.exit_code == 4 and "WP07" in result.output


def test_cli_refuses_an_unknown_state_with_exit_2():
    feature, _ = _wp_in("planned")
    result = run_cli(f"wp transition WP01 --to finished --feature {feature.slug}")
    assert result.exit_code == 2 and "not a work package state" in result.output


def test_cli_refuses_an_agent_approving_with_exit_5():
    feature, _ = _wp_in("for_review")
    result = run_cli(f"wp transition WP01 --to done --feature {feature.slug} --actor agent:claude-code")
    assert result.exit_code == 5


# --- Admin actions -----------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), WP_LEGAL)
def test_admin_action_applies_every_legal_wp_transition_as_the_logged_in_human(admin_client, source, target):
    feature, wp = _wp_in(source)
    response = _admin_action(admin_client, "workpackage", f"move_to_{target}", wp.pk)
    assert response.status_code == 200
    wp.refresh_from_db()
    assert wp.state == target
    assert feature.audit_entries.get(wp=wp).actor == "human:alice"


@pytest.mark.parametrize(("source", "target"), WP_ILLEGAL)
def test_admin_action_refuses_every_illegal_wp_transition_with_a_message(admin_client, source, target):
    feature, wp = _wp_in(source)
    response = _admin_action(admin_client, "workpackage", f"move_to_{target}", wp.pk)
    assert f"cannot move from {source} to {target}" in response.content.decode()
    wp.refresh_from_db()
    assert wp.state == source and not AuditEntry.objects.exists()


@pytest.mark.parametrize(("source", "target"), FEATURE_LEGAL)
def test_admin_action_applies_every_legal_feature_transition(admin_client, source, target):
    feature = _feature_in(source)
    _admin_action(admin_client, "feature", f"move_to_{target}", feature.pk)
    feature.refresh_from_db()
    assert feature.state == target


@pytest.mark.parametrize(("source", "target"), FEATURE_ILLEGAL)
def test_admin_action_refuses_every_illegal_feature_transition(admin_client, source, target):
    feature = _feature_in(source)
    response = _admin_action(admin_client, "feature", f"move_to_{target}", feature.pk)
    assert "cannot move from" in response.content.decode()
    assert Feature.objects.get(pk=feature.pk).state == source and not AuditEntry.objects.exists()


def test_admin_refuses_a_dependency_cycle_as_a_form_error(admin_client):
    feature, (wp1, wp2) = make_feature_with_wps(2)  # WP02 depends on WP01
    response = admin_client.post(f"/admin/features/workpackage/{wp1.pk}/change/", {
        "feature": feature.pk, "code": "WP01", "title": "One", "plan": "", "deliverables": "[]",
        "estimate_days": "", "owned_paths": "[]", "agent": "", "depends_on": [wp2.pk],
    })
    assert response.status_code == 200
    assert "dependency cycle: WP01 -&gt; WP02 -&gt; WP01" in response.content.decode()
    assert not wp1.dependencies.exists()


def test_admin_saves_acyclic_dependencies_through_the_service(admin_client):
    feature, (wp1, wp2, wp3) = make_feature_with_wps(3, chain=False)
    response = admin_client.post(f"/admin/features/workpackage/{wp3.pk}/change/", {
        "feature": feature.pk, "code": "WP03", "title": "Three", "plan": "", "deliverables": "[]",
        "estimate_days": "", "owned_paths": "[]", "agent": "", "depends_on": [wp1.pk, wp2.pk],
    })
    assert response.status_code == 302
    assert sorted(wp3.dependencies.values_list("code", flat=True)) == ["WP01", "WP02"]


def test_the_audit_chain_is_read_only_in_the_admin(admin_client):
    feature, wp = _wp_in("planned")
    run_cli(f"wp transition WP01 --to doing --feature {feature.slug} --actor human:alice")
    entry = AuditEntry.objects.first()
    assert admin_client.get("/admin/audit/auditentry/add/").status_code == 403
    assert admin_client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    page = admin_client.get(f"/admin/audit/auditentry/{entry.pk}/change/").content.decode()
    assert 'name="actor"' not in page  # shown, not editable


def test_the_verify_chain_action_reports_an_intact_chain(admin_client):
    feature, wp = _wp_in("planned")
    run_cli(f"wp transition WP01 --to doing --feature {feature.slug} --actor human:alice")
    entry = AuditEntry.objects.first()
    response = admin_client.post("/admin/audit/auditentry/",
                                 {"action": "verify_selected_chains", "_selected_action": [entry.pk]}, follow=True)
    assert "audit chain intact (2 entries verified)" in response.content.decode()


def test_the_feature_page_shows_chain_status(admin_client):
    feature, wp = _wp_in("planned")
    run_cli(f"wp transition WP01 --to doing --feature {feature.slug} --actor human:alice")
    page = admin_client.get(f"/admin/features/feature/{feature.pk}/change/").content.decode()
    assert "✓ intact (2 entries verified)" in page
