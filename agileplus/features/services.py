"""Feature and work-package services: the only code that changes a ``state``.

``transition_wp`` and ``transition_feature`` check the lifecycle table, lock the
feature row, change the state, append the audit entry and write the event, all
in one database transaction. Every entry point calls them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from agileplus.audit.chain import append_entry
from agileplus.audit.models import AuditEntry
from agileplus.core.actors import SYSTEM, Actor, parse_actor
from agileplus.core.errors import (
    BlockedByDependency,
    DomainError,
    IllegalTransition,
    NotFound,
    PermissionDenied,
    StaleState,
)
from agileplus.core.ports import Port
from agileplus.events import subjects
from agileplus.events.services import record_event
from agileplus.features import dag
from agileplus.features.lifecycles import (
    FeatureState,
    Rule,
    WPState,
    feature_rule,
    feature_targets,
    normalize_wp_state,
    wp_rule,
    wp_targets,
)
from agileplus.features.models import Dependency, Feature, WorkPackage


@dataclass
class TransitionResult:
    wp: WorkPackage | None
    feature: Feature
    source: str
    target: str
    entry: AuditEntry
    unblocked: list[WorkPackage] = field(default_factory=list)
    feature_entries: list[AuditEntry] = field(default_factory=list)

    def as_dict(self) -> dict:
        """A WP's move as every door answers it, the one definition (``api.output.MovedOut`` is its
        schema and renders it; a queued move to done stores it as its request's result)."""
        return {"feature": self.feature.slug, "wp": self.wp.code, "from": self.source, "to": self.target,
                "state": self.target, "actor": self.entry.actor, "audit_entry": self.entry.seq,
                "merge": (self.entry.metadata or {}).get("merge"), "unblocked": [w.code for w in self.unblocked]}


def _lock_feature(feature_id: int) -> Feature:
    # The feature row lock serializes every append to this feature's audit chain.
    return Feature.objects.select_for_update().get(pk=feature_id)


def blocking_dependencies(wp: WorkPackage) -> list[WorkPackage]:
    return [d for d in wp.dependencies.all().order_by("code") if d.state != WPState.DONE]


def transition_wp(
    wp: WorkPackage | int,
    target: str,
    *,
    actor: Actor | str,
    expected_source: str | None = None,
    metadata: dict | None = None,
    evidence_refs: list | None = None,
    event_extra: dict | None = None,
) -> TransitionResult:
    """Move one WP to ``target`` through the lifecycle table, or raise a DomainError."""
    actor = parse_actor(actor)
    target = _known_state(normalize_wp_state(target), WPState.ALL, "work package")
    wp_id = wp.pk if isinstance(wp, WorkPackage) else wp
    with transaction.atomic():
        try:
            feature_id = WorkPackage.objects.values_list("feature_id", flat=True).get(pk=wp_id)
        except WorkPackage.DoesNotExist:
            raise NotFound(f"work package {wp_id} does not exist", field="wp") from None
        feature = _lock_feature(feature_id)
        wp = WorkPackage.objects.select_for_update().get(pk=wp_id)
        source = wp.state
        _check_wp_move(wp, source, target, actor, expected_source)
        now = timezone.now()
        wp.state = target
        wp.state_changed_at = now
        if target == WPState.DONE:
            wp.done_at = now
        wp.save(update_fields=["state", "state_changed_at", "done_at", "updated_at"])
        entry = append_entry(
            feature_id=feature.pk,
            wp_id=wp.pk,
            actor=str(actor),
            transition=f"{wp.code}:{source}->{target}",
            evidence_refs=evidence_refs,
            metadata=metadata,
        )
        payload = {"from": source, "to": target, "actor": str(actor)}
        payload.update(event_extra or {})
        record_event(subjects.wp_state_changed(feature.slug, wp.code), payload, feature_id=feature.pk)
        unblocked = _unblock_dependents(feature, wp) if target == WPState.DONE else []
        feature_entries = _follow_wps(feature)
        result = TransitionResult(wp, feature, source, target, entry, unblocked, feature_entries)
        follow_ups(feature, wp, source, target, bool(unblocked))
    return result


def _check_wp_move(wp: WorkPackage, source: str, target: str, actor: Actor, expected_source: str | None) -> None:
    """Refuse a move the lifecycle table, the actor or the dependencies do not allow."""
    stale = expected_source is not None and normalize_wp_state(expected_source) != source
    rule = _legal_move(wp.code, "work package", source, target, expected_source if stale else None,
                       wp_rule(source, target), wp_targets(source))
    if rule.approve and not actor.may_approve:
        raise PermissionDenied(f"{actor} may not move {wp.code} to {target}", field="actor",
                               fix="only a human or CI actor may approve work; an agent cannot approve its own")
    blockers = blocking_dependencies(wp) if rule.needs_dependencies_done else []
    if blockers:
        names = ", ".join(f"{b.code} ({b.state})" for b in blockers)
        raise BlockedByDependency(f"{wp.code} is blocked by {names}", field="to",
                                  fix="finish the blocking work packages first", blocked_by=[b.code for b in blockers])


def _known_state(target: str, states: Collection[str], what: str) -> str:
    if target not in states:
        raise DomainError(f"'{target}' is not a {what} state", field="to", fix=f"use one of {', '.join(states)}")
    return target


def _legal_move(name: str, what: str, source: str, target: str, stale_expectation: str | None,
                rule: Rule | None, targets: list[str]) -> Rule:
    """The lifecycles' one refusal of a move: the caller expected another state (``stale_expectation``,
    as the caller wrote it), or the move is not in the table."""
    if stale_expectation is not None:
        raise StaleState(f"{name} is {source}, not {stale_expectation}", field="from",
                         fix=f"reload the {what} and retry")
    if rule is None:
        allowed = ", ".join(targets) or "none"
        raise IllegalTransition(f"{name} cannot move from {source} to {target}", field="to",
                                fix=f"from {source} it can move to: {allowed}")
    return rule


# What follows a transition is the workflow's (``workflow/services.py: record_follow_ups``, one
# layer up): it plugs its recorder in when Django loads the apps (``workflow/apps.py``), so this
# layer never imports the one above it. Called with (feature, wp, source, target, unblocked).
follow_ups = Port("follow-up recorder", "agileplus.workflow")


def dependency_graph(feature: Feature) -> tuple[dict[int, str], list[tuple[int, int]]]:
    """The feature's WP states by id and its edges ``(wp, depends_on)``, for ``features.dag``."""
    states = dict(feature.work_packages.values_list("pk", "state"))
    edges = list(Dependency.objects.filter(wp__feature=feature).values_list("wp_id", "depends_on_id"))
    return states, edges


def ready_wps(feature: Feature) -> list[WorkPackage]:
    """The feature's WPs that are ready to dispatch (``dag.is_ready``), by code."""
    states, edges = dependency_graph(feature)
    ready = dag.ready_nodes(states, edges, waiting=WPState.PLANNED, done=WPState.DONE)
    return list(feature.work_packages.filter(pk__in=ready).order_by("code"))


def _unblock_dependents(feature: Feature, finished: WorkPackage) -> list[WorkPackage]:
    """Dependents of ``finished`` that became ready: one audit entry and one event each."""
    states, edges = dependency_graph(feature)
    ids = dag.unblocked_by(finished.pk, states, edges, waiting=WPState.PLANNED, done=WPState.DONE)
    unblocked = []
    for dependent in WorkPackage.objects.filter(pk__in=ids).order_by("code"):
        append_entry(
            feature_id=feature.pk,
            wp_id=dependent.pk,
            actor=str(SYSTEM),
            transition=f"{dependent.code}:unblocked",
            metadata={"unblocked_by": finished.code},
        )
        record_event(
            subjects.wp_unblocked(feature.slug, dependent.code),
            {"wp_id": dependent.code, "unblocked_by": finished.code, "ready_to_start": True},
            feature_id=feature.pk,
        )
        unblocked.append(dependent)
    return unblocked


def _wanted_feature_state(feature: Feature) -> str | None:
    """The state a feature's WPs put it in, if they move it forward."""
    states = list(feature.work_packages.values_list("state", flat=True))
    if not states:
        return None
    if all(s == WPState.DONE for s in states):
        return FeatureState.SHIPPED
    if all(s in (WPState.DONE, WPState.FOR_REVIEW) for s in states):
        return FeatureState.REVIEWING
    if any(s != WPState.PLANNED for s in states):
        return FeatureState.IMPLEMENTING
    return None


def _follow_wps(feature: Feature) -> list[AuditEntry]:
    """Feature state follows its WPs forward (planned → implementing → reviewing → shipped)."""
    wanted = _wanted_feature_state(feature)
    order = FeatureState.ORDER
    if wanted is None or feature.state == FeatureState.CANCELLED:
        return []
    if order.index(feature.state) < order.index(FeatureState.PLANNED):
        return []  # not planned yet: people move early stages themselves
    entries = []
    while order.index(feature.state) < order.index(wanted):
        entries.append(_apply_feature_step(feature, order[order.index(feature.state) + 1], SYSTEM, {}))
    return entries


def _apply_feature_step(feature: Feature, target: str, actor: Actor, metadata: dict) -> AuditEntry:
    source = feature.state
    feature.state = target
    feature.save(update_fields=["state", "updated_at"])
    entry = append_entry(
        feature_id=feature.pk, actor=str(actor), transition=f"{source}->{target}", metadata=metadata
    )
    record_event(
        subjects.feature_state_changed(feature.slug),
        {"from": source, "to": target, "actor": str(actor)},
        feature_id=feature.pk,
    )
    return entry


def transition_feature(
    feature: Feature | int,
    target: str,
    *,
    actor: Actor | str,
    expected_source: str | None = None,
    metadata: dict | None = None,
) -> TransitionResult:
    actor = parse_actor(actor)
    target = _known_state((target or "").strip().lower(), FeatureState.ALL, "feature")
    feature_id = feature.pk if isinstance(feature, Feature) else feature
    with transaction.atomic():
        try:
            feature = _lock_feature(feature_id)
        except Feature.DoesNotExist:
            raise NotFound(f"feature {feature_id} does not exist", field="feature") from None
        source = feature.state
        _legal_move(feature.slug, "feature", source, target, expected_source if expected_source != source else None,
                    feature_rule(source, target), feature_targets(source))
        entry = _apply_feature_step(feature, target, actor, metadata or {})
    return TransitionResult(None, feature, source, target, entry)


def record_wp_entry(
    wp: WorkPackage, *, actor: Actor | str, transition: str, metadata: dict | None = None,
    evidence_refs: list | None = None, subject: str | None = None, payload: dict | None = None,
) -> AuditEntry:
    """An audit entry (and optional event) about a WP that is not a state change,
    e.g. a review report or a merge commit. Same lock, same transaction."""
    actor = parse_actor(actor)
    with transaction.atomic():
        feature = _lock_feature(wp.feature_id)
        entry = append_entry(
            feature_id=feature.pk, wp_id=wp.pk, actor=str(actor), transition=transition,
            metadata=metadata, evidence_refs=evidence_refs,
        )
        if subject:
            record_event(subject, payload or {}, feature_id=feature.pk)
    return entry


# --- Plan editing -------------------------------------------------------------------


def get_feature(ref: str | int) -> Feature:
    """A feature by slug, by number (``3`` or ``003``) or by slug prefix."""
    text = str(ref).strip()
    qs = Feature.objects.select_related("project")
    feature = qs.filter(slug=text).first()
    if feature is None and text.isascii() and text.isdigit():  # `³`.isdigit() is true, int() refuses it
        feature = qs.filter(number=int(text)).first()
    if feature is None:
        matches = list(qs.filter(slug__startswith=text)[:2])
        feature = matches[0] if len(matches) == 1 else None
    if feature is None:
        raise NotFound(f"no feature '{text}'", field="feature", fix="run `agileplus status` to list features")
    return feature


def get_wp(feature: Feature, code: str) -> WorkPackage:
    code = normalize_wp_code(code)
    try:
        return feature.work_packages.get(code=code)
    except WorkPackage.DoesNotExist:
        known = ", ".join(feature.work_packages.values_list("code", flat=True)) or "none"
        raise NotFound(f"{feature.slug} has no work package {code}", field="wp", fix=f"known: {known}") from None


def normalize_wp_code(code: str) -> str:
    """`2`, `wp2`, `WP02` → `WP02`. Only ASCII digits count (`³`.isdigit() is true, int() refuses it)."""
    text = str(code).strip().upper()[:100]
    digits = text[2:] if text.startswith("WP") else text
    if digits.isascii() and digits.isdigit() and len(digits) <= 6:
        return f"WP{int(digits):02d}"
    return text


def check_acyclic(codes: Iterable[str], edges: Iterable[tuple[str, str]]) -> None:
    cycle = dag.find_cycle(sorted(codes), edges)
    if cycle:
        raise DomainError(
            f"dependency cycle: {' -> '.join(cycle)}",
            field="dependencies",
            fix="remove one of these dependencies",
            cycle=cycle,
        )


def set_dependencies(wp: WorkPackage, depends_on_codes: Iterable[str]) -> None:
    """Replace ``wp``'s dependencies, refusing unknown WPs and cycles."""
    wanted = [normalize_wp_code(c) for c in depends_on_codes]
    with transaction.atomic():
        _lock_feature(wp.feature_id)
        by_code = {w.code: w for w in wp.feature.work_packages.all()}
        unknown = [c for c in wanted if c not in by_code]
        if unknown:
            raise DomainError(
                f"{wp.code} depends on unknown work package(s): {', '.join(unknown)}",
                field="dependencies",
                fix=f"known: {', '.join(sorted(by_code))}",
            )
        edges = [
            (a, b)
            for a, b in Dependency.objects.filter(wp__feature_id=wp.feature_id)
            .exclude(wp=wp)
            .values_list("wp__code", "depends_on__code")
        ] + [(wp.code, c) for c in wanted]
        check_acyclic(by_code, edges)
        Dependency.objects.filter(wp=wp).delete()
        Dependency.objects.bulk_create([Dependency(wp=wp, depends_on=by_code[c]) for c in dict.fromkeys(wanted)])


ACTIVE_FEATURE_STATES = tuple(s for s in FeatureState.ALL if s not in (FeatureState.SHIPPED, FeatureState.CANCELLED))


def find_wp(code: str, feature: str | int | Feature | None = None) -> WorkPackage:
    """A WP by code, in ``feature`` if given, else the one active feature that has that code."""
    if feature is not None:
        feature = feature if isinstance(feature, Feature) else get_feature(feature)
        return get_wp(feature, code)
    wanted = normalize_wp_code(code)
    matches = list(
        WorkPackage.objects.select_related("feature")
        .filter(code=wanted, feature__state__in=ACTIVE_FEATURE_STATES)
        .order_by("feature__number")[:10]
    )
    if not matches:
        raise NotFound(f"no active feature has a work package {wanted}", field="wp",
                       fix="check the code, or name the feature with --feature")
    if len(matches) > 1:
        slugs = ", ".join(m.feature.slug for m in matches)
        raise DomainError(f"{wanted} exists in several features: {slugs}", field="--feature",
                          fix="name the feature with --feature")
    return matches[0]
