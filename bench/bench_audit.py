"""Audit chain verification throughput on 100,000 entries (SQLite in a scratch folder).

Figures: verify_chain end to end (database read + hashing), verify_rows on rows in
memory with the fast canonical encoder, the same with the rfc8785 reference
encoder; baseline: sha256 over the same canonical bytes, no JSON encoding.
Usage: .venv/bin/python bench/bench_audit.py [--quick]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["AGILEPLUS_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-audit-")
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")

import django  # noqa: E402

django.setup()

import rfc8785  # noqa: E402
from django.core.management import call_command  # noqa: E402

from agileplus.audit import chain  # noqa: E402
from agileplus.audit.models import GENESIS_HASH, AuditEntry  # noqa: E402
from agileplus.core.canonical import canonical_json  # noqa: E402
from agileplus.features.models import Feature, Project, WorkPackage  # noqa: E402


def build(n: int) -> Feature:
    call_command("migrate", verbosity=0)
    project = Project.objects.create(name="bench", repo_url="/tmp/bench")
    feature = Feature.objects.create(project=project, slug="001-bench", number=1, title="bench")
    wp = WorkPackage.objects.create(feature=feature, code="WP01", title="bench")
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
    figures = [
        {"what": f"audit verify_chain end to end (SQLite read + verify), {n:,} entries",
         "value": rate(n, end_to_end), "unit": "entries/s", **baseline, "note": "aim >= 50,000/s"},
        {"what": f"audit verify_rows in memory (fast RFC 8785 encoder), {n:,} entries",
         "value": rate(n, in_memory), "unit": "entries/s", **baseline},
        {"what": f"hashing with the rfc8785 reference encoder, {n:,} entries",
         "value": rate(n, reference), "unit": "entries/s", **baseline},
    ]
    print(f"{'what':75} {'entries/s':>12} {'baseline':>12}")
    for f in figures:
        print(f"{f['what']:75} {f['value']:>12,.0f} {f['baseline_value']:>12,.0f}")
    print("BENCH-JSON " + json.dumps({"name": "audit", "figures": figures}))


if __name__ == "__main__":
    main()
