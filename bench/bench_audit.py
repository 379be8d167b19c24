"""Audit chain verification throughput on 100,000 entries (SQLite in a scratch folder).

Figures: verify_chain end to end (database read + hashing), verify_rows on rows in
memory with the fast canonical encoder, the same with the rfc8785 reference
encoder; baseline: sha256 over the same canonical bytes, no JSON encoding.
Usage: .venv/bin/python bench/bench_audit.py [--quick]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit  # noqa: E402
from _farm import bench_wp, setup  # noqa: E402

setup("audit")  # a scratch folder and SQLite database, migrated

import rfc8785  # noqa: E402

from agileplus.audit import chain  # noqa: E402
from agileplus.audit.models import GENESIS_HASH, AuditEntry  # noqa: E402
from agileplus.core.canonical import canonical_json  # noqa: E402
from agileplus.features.models import Feature  # noqa: E402


def build(n: int) -> Feature:
    wp = bench_wp()
    feature = wp.feature
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    prev, batch = GENESIS_HASH, []
    for seq in range(1, n + 1):
        ts = start + dt.timedelta(seconds=seq)
        meta = {"job_id": f"sess_{seq:08d}", "commits": seq % 7, "reason": "agent_timeout"} if seq % 3 == 0 else {}
        refs = [{"fr_id": "FR-001", "evidence_id": seq}] if seq % 5 == 0 else []
        fields = chain.entry_fields(seq=seq, feature_id=feature.pk, wp_id=wp.pk, timestamp=ts,
                                    actor="agent:claude-code", transition="WP01:doing->for_review",
                                    prev_hash=prev, evidence_refs=refs, metadata=meta)
        digest = chain.compute_hash(fields)
        batch.append(AuditEntry(feature=feature, seq=seq, wp=wp, timestamp=ts, actor=fields["actor"],
                                transition=fields["transition"], evidence_refs=refs, metadata=meta,
                                prev_hash=prev, hash=digest))
        prev = digest
        if len(batch) == 5000:
            AuditEntry.objects.bulk_create(batch)
            batch = []
    AuditEntry.objects.bulk_create(batch)
    return feature


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def main() -> None:
    n = 10_000 if "--quick" in sys.argv else 100_000
    feature = build(n)

    start = time.perf_counter()
    result = chain.verify_chain(feature)
    end_to_end = time.perf_counter() - start
    assert result.ok and result.count == n, result.problems[:3]

    rows = list(chain._rows(feature.pk))
    start = time.perf_counter()
    assert chain.verify_rows(feature.slug, rows).ok
    in_memory = time.perf_counter() - start

    dicts = [dict(zip(("id", "feature_id", "wp_id", "timestamp", "actor", "transition", "prev_hash",
                       "evidence_refs", "metadata"), (r[0], r[1], r[2], chain.utc_iso(r[3]), *r[4:9]), strict=True))
             for r in rows]
    start = time.perf_counter()
    for d in dicts:
        hashlib.sha256(rfc8785.dumps(d)).hexdigest()
    reference = time.perf_counter() - start
    payloads = [canonical_json(d) for d in dicts]
    start = time.perf_counter()
    for p in payloads:
        hashlib.sha256(p).hexdigest()
    raw = time.perf_counter() - start

    baseline = {"baseline": "sha256 of the same canonical bytes, no JSON", "baseline_value": rate(n, raw),
                "unit_baseline": "entries/s"}
    emit("audit", [
        Figure(f"audit verify_chain end to end (SQLite read + verify), {n:,} entries",
               rate(n, end_to_end), "entries/s", **baseline, note="aim >= 50,000/s"),
        Figure(f"audit verify_rows in memory (fast RFC 8785 encoder), {n:,} entries",
               rate(n, in_memory), "entries/s", **baseline),
        Figure(f"hashing with the rfc8785 reference encoder, {n:,} entries",
               rate(n, reference), "entries/s", **baseline),
    ])


if __name__ == "__main__":
    main()
