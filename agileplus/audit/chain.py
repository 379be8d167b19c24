"""Appending to and verifying a feature's audit chain.

Each entry's hash is SHA-256 over the RFC 8785 canonical JSON of every field
but ``hash`` (``id`` is the entry's place in its feature's chain), and the first
entry chains to 64 zeros. Appends must run inside the transaction that holds the
feature's row lock (see ``agileplus.features.services``), so the chain cannot fork.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.utils import timezone

from agileplus.audit.models import GENESIS_HASH, AuditEntry
from agileplus.core.canonical import canonical_json, hashable, utc_iso
from agileplus.core.redaction import redact_data


def entry_fields(
    *,
    seq: int,
    feature_id: int,
    wp_id: int | None,
    timestamp,
    actor: str,
    transition: str,
    prev_hash: str,
    evidence_refs: list,
    metadata: dict,
) -> dict:
    """The hashed form of an entry, also its exported JSON (plus ``hash``)."""
    return {
        "id": seq,
        "feature_id": feature_id,
        "wp_id": wp_id,
        "timestamp": utc_iso(timestamp),
        "actor": actor,
        "transition": transition,
        "prev_hash": prev_hash,
        "evidence_refs": hashable(evidence_refs or []),
        "metadata": hashable(metadata or {}),
    }


def entry_as_dict(entry: AuditEntry) -> dict:
    data = entry_fields(
        seq=entry.seq,
        feature_id=entry.feature_id,
        wp_id=entry.wp_id,
        timestamp=entry.timestamp,
        actor=entry.actor,
        transition=entry.transition,
        prev_hash=entry.prev_hash,
        evidence_refs=entry.evidence_refs,
        metadata=entry.metadata,
    )
    data["hash"] = entry.hash
    return data


def compute_hash(fields: dict) -> str:
    """SHA-256 of the canonical JSON of ``entry_fields`` output (already hashable)."""
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def append_entry(
    *,
    feature_id: int,
    actor: str,
    transition: str,
    wp_id: int | None = None,
    evidence_refs: list | None = None,
    metadata: dict | None = None,
) -> AuditEntry:
    """Append one entry. The caller holds the feature's row lock inside a transaction.

    An entry can never be edited afterwards, so no secret this process holds is written into
    one: its metadata and evidence are redacted before they are hashed."""
    last = (
        AuditEntry.objects.filter(feature_id=feature_id).order_by("-seq").values("seq", "hash").first()
    )
    seq, prev_hash = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS_HASH)
    # Store exactly what is hashed, so a round trip through the database re-hashes the same.
    stored = {"seq": seq, "feature_id": feature_id, "wp_id": wp_id, "timestamp": timezone.now(), "actor": actor,
              "transition": transition, "prev_hash": prev_hash}
    fields = entry_fields(**stored, evidence_refs=redact_data(evidence_refs or []),
                          metadata=redact_data(metadata or {}))
    entry = AuditEntry(**stored, evidence_refs=fields["evidence_refs"], metadata=fields["metadata"],
                       hash=compute_hash(fields))
    entry.save(force_insert=True)
    return entry


@dataclass
class Problem:
    entry_id: int | None  # the entry's position in its feature's chain (`seq`, the export's `id`)
    kind: str  # changed | deleted | reordered | broken_link
    detail: str
    row_id: int | None = None  # its database row (`audit_auditentry.id`), None for a deleted entry

    def __str__(self) -> str:
        where = f"entry id={self.entry_id}" if self.entry_id is not None else "chain"
        return f"{where}: {self.kind}: {self.detail}"

    def as_dict(self) -> dict:
        return {"id": self.entry_id, "row_id": self.row_id, "kind": self.kind, "detail": self.detail}


@dataclass
class Verification:
    feature_slug: str
    count: int = 0
    first: dict | None = None
    last: dict | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "feature": self.feature_slug,
            "ok": self.ok,
            "entries": self.count,
            "first": self.first,
            "last": self.last,
            "problems": [p.as_dict() for p in self.problems],
        }


_COLUMNS = ("seq", "feature_id", "wp_id", "timestamp", "actor", "transition", "prev_hash",
            "evidence_refs", "metadata", "hash", "pk")


def _rows(feature_id: int) -> Iterator[tuple]:
    # Physical order by primary key: the order in which entries were appended.
    yield from AuditEntry.objects.filter(feature_id=feature_id).order_by("pk").values_list(*_COLUMNS).iterator(
        chunk_size=5000
    )


def verify_rows(feature_slug: str, rows: Iterable[tuple]) -> Verification:
    """Recompute every hash and link; name each entry that was changed, deleted or moved.

    Three independent checks, so each kind of tampering is named by the ids it touched:
    an entry whose fields no longer give its hash is *changed*; a gap in the ids is
    *deleted*; ids out of append (primary key) order are *reordered*; an entry whose
    ``prev_hash`` is not the hash of the entry id-1 has a *broken link*.
    """
    result = Verification(feature_slug)
    sha256 = hashlib.sha256
    encode = canonical_json
    links: dict[int, tuple[str, str, str]] = {}  # seq -> (prev_hash, hash, transition)
    highest = 0
    row_ids: dict[int, int] = {}  # seq -> database row id, where the rows carry it
    for seq, feature_id, wp_id, timestamp, actor, transition, prev_hash, evidence_refs, metadata, stored, *pk in rows:
        if pk:
            row_ids[seq] = pk[0]
        # Stored JSON is already in hashable form (append_entry stores what it hashes).
        fields = {
            "id": seq, "feature_id": feature_id, "wp_id": wp_id, "timestamp": utc_iso(timestamp),
            "actor": actor, "transition": transition, "prev_hash": prev_hash,
            "evidence_refs": evidence_refs, "metadata": metadata,
        }
        result.count += 1
        if sha256(encode(fields)).hexdigest() != stored:
            result.problems.append(Problem(seq, "changed", "its fields no longer match its hash"))
        if seq < highest:
            result.problems.append(
                Problem(seq, "reordered", f"id={seq} was stored after id={highest}: entries were moved")
            )
        highest = max(highest, seq)
        links[seq] = (prev_hash, stored, transition)
    order = sorted(links)
    if order:
        result.first = {"id": order[0], "transition": links[order[0]][2]}
        result.last = {"id": order[-1], "transition": links[order[-1]][2]}
    expected_prev = GENESIS_HASH
    previous = 0
    for seq in order:
        prev_hash, stored, _ = links[seq]
        if seq != previous + 1:
            missing = f"{previous + 1}" if seq == previous + 2 else f"{previous + 1}..{seq - 1}"
            result.problems.append(Problem(previous + 1, "deleted", f"entry id={missing} is missing before id={seq}"))
        elif prev_hash != expected_prev:
            result.problems.append(
                Problem(seq, "broken_link", f"its prev_hash is not the hash of entry id={seq - 1}")
            )
        expected_prev = stored
        previous = seq
    for p in result.problems:
        p.row_id = row_ids.get(p.entry_id) if p.kind != "deleted" else None
    if order:
        result.first["row_id"], result.last["row_id"] = row_ids.get(order[0]), row_ids.get(order[-1])
    result.problems.sort(key=lambda p: (p.entry_id or 0, p.kind))
    return result


def verify_chain(feature) -> Verification:
    return verify_rows(feature.slug, _rows(feature.pk))


def export_lines(feature) -> Iterator[str]:
    """The chain as compact JSON lines in id order (the seed's export format), each with its
    ``row_id`` (the database row, ``audit_auditentry.id``; ``id`` is the place in the feature's
    chain): ``row_id`` is not one of the hashed fields."""
    for entry in AuditEntry.objects.filter(feature_id=feature.pk).order_by("seq").iterator(chunk_size=2000):
        yield json.dumps({**entry_as_dict(entry), "row_id": entry.pk}, separators=(",", ":"), ensure_ascii=False)
