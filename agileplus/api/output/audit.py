"""Response shapes of the audit chain: entries, pages, the chain's verification."""

from __future__ import annotations

from rest_framework import serializers as s

from agileplus.api.output.base import Shape, enum, maybe, next_page


class AuditEntryOut(Shape):
    id = s.IntegerField(help_text="place in the feature's chain (seq)")
    feature_id = s.IntegerField()
    wp_id = maybe(s.IntegerField)
    timestamp = s.CharField()
    actor = s.CharField()
    transition = s.CharField()
    prev_hash = s.CharField()
    evidence_refs = s.ListField(child=s.JSONField())
    metadata = s.DictField()
    hash = s.CharField(help_text="SHA-256 over the RFC 8785 canonical JSON of the other fields")


class AuditPageOut(Shape):
    results = AuditEntryOut(many=True, help_text="in chain order (seq), from `after` on")
    next_after = next_page(s.IntegerField)
    next = maybe(s.URLField)


class ChainPointOut(Shape):
    id = s.IntegerField()
    transition = s.CharField()


class ProblemOut(Shape):
    id = maybe(s.IntegerField)
    kind = enum(("changed", "deleted", "reordered", "broken_link"))
    detail = s.CharField()


class VerificationOut(Shape):
    feature = s.CharField()
    ok = s.BooleanField()
    entries = s.IntegerField()
    first = ChainPointOut(allow_null=True)
    last = ChainPointOut(allow_null=True)
    problems = ProblemOut(many=True)
