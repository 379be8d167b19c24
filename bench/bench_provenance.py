"""`agileplus provenance verify --all` throughput: main moves verified per second on a repository of
2,000 main moves (500 with --quick), each a merge of one agent commit with its Agent Trace note,
signed attestation note and audit entry (SQLite in a scratch folder).

Figures: verify --all end to end (notes read, each envelope's ed25519 signature, subject and
Agent Trace digests, the audit entries against the chain); the stdlib core alone (what
tools/verify-provenance.py runs, with cryptography) and its pure-Python ed25519 on 100 moves;
baseline: plain ``git log --first-parent`` of the same range, in the same run.
Usage: .venv/bin/python bench/bench_provenance.py [--quick]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit  # noqa: E402
from _farm import bench_wp, setup  # noqa: E402

setup("provenance")  # a scratch folder and SQLite database, migrated


from agileplus.audit import chain  # noqa: E402
from agileplus.audit.models import GENESIS_HASH, AuditEntry  # noqa: E402
from agileplus.provenance import agent_trace, attestation  # noqa: E402
from agileplus.provenance.standalone import ATTESTATION_NOTES, TRACE_NOTES, verify_history  # noqa: E402
from agileplus.provenance.verify import verify  # noqa: E402

WHO = "committer AgilePlus <agileplus@localhost> 1780000000 +0000\n"


def data(text: str) -> str:
    return f"data {len(text.encode())}\n{text}\n"


def fast_import(repo: Path, stream: str) -> None:
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=stream.encode(), check=True)


def build_history(repo: Path, n: int) -> list[tuple[str, str, str]]:
    """main: an initial commit, then n merges of one agent commit each. (merge, tree, agent commit)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    parts = [f"commit refs/heads/main\nmark :1\n{WHO}{data('initial')}M 100644 inline README.md\n{data('x')}"]
    for i in range(1, n + 1):
        body = "".join(f"line {k} of move {i}\n" for k in range(5))
        parts.append(f"commit refs/heads/agent\nmark :{2 * i}\n{WHO}{data(f'feat(WP{i:04d}): change {i}')}"
                     f"from :{2 * i - 1}\nM 100644 inline src/f{i}.py\n{data(body)}")
        parts.append(f"commit refs/heads/main\nmark :{2 * i + 1}\n{WHO}{data(f'Merge WP{i:04d}')}"
                     f"from :{2 * i - 1}\nmerge :{2 * i}\nM 100644 inline src/f{i}.py\n{data(body)}")
    fast_import(repo, "".join(parts))
    log = subprocess.run(["git", "-C", str(repo), "log", "--first-parent", "--reverse", "--format=%H %T %P",
                          "main"], capture_output=True, text=True, check=True).stdout.splitlines()[1:]
    return [(fields[0], fields[1], fields[3]) for fields in (line.split() for line in log)]


def audit_entries(n: int) -> list[AuditEntry]:
    wp = bench_wp()
    feature = wp.feature
    start, prev, rows = dt.datetime(2026, 3, 1, tzinfo=dt.UTC), GENESIS_HASH, []
    for seq in range(1, n + 1):
        fields = chain.entry_fields(seq=seq, feature_id=feature.pk, wp_id=wp.pk, timestamp=start, actor="ci:automation",
                                    transition="merge_queue:main_moved", prev_hash=prev, evidence_refs=[], metadata={})
        prev = chain.compute_hash(fields)
        rows.append(AuditEntry(feature=feature, seq=seq, wp=wp, timestamp=start, actor=fields["actor"],
                               transition=fields["transition"], prev_hash=fields["prev_hash"], hash=prev))
    return AuditEntry.objects.bulk_create(rows)


def write_notes(repo: Path, moves: list[tuple[str, str, str]], entries: list[AuditEntry]) -> None:
    key = attestation.private_key()
    traces, envelopes = [], []
    prev = moves[0][0]
    for (merge, tree, agent), entry in zip(moves, entries, strict=True):
        trace = agent_trace.record_text(agent_trace.trace_record(
            agent, {f"src/f{entry.seq}.py": [(1, 5)]}, conversation_url=f"agileplus:/api/jobs/j{entry.seq}/log",
            model="bench-model", farm={"job": f"j{entry.seq}", "harness": "command"}))
        predicate = {"repository": "/tmp/bench", "branch": "main", "from": prev, "to": merge, "checks": [],
                     "workPackages": [{"feature": "001-bench", "wp": "WP01",
                                       "agentTraces": {agent: hashlib.sha256(trace.encode()).hexdigest()}}],
                     "audit": [{"feature": "001-bench", "id": entry.seq, "hash": entry.hash}]}
        envelope = attestation.sign(attestation.statement(
            [attestation.commit_subject("/tmp/bench", merge, tree)], predicate), key)
        traces.append(f"N inline {agent}\n{data(trace)}")
        envelopes.append(f"N inline {merge}\n{data(attestation.envelope_text(envelope))}")
        prev = merge
    fast_import(repo, f"commit {TRACE_NOTES}\n{WHO}{data('notes')}{''.join(traces)}"
                      f"commit {ATTESTATION_NOTES}\n{WHO}{data('notes')}{''.join(envelopes)}")


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def main() -> None:
    n = 500 if "--quick" in sys.argv else 2000
    repo = Path(tempfile.mkdtemp(prefix="bench-provenance-repo-"))
    attestation.ensure_key()
    moves = build_history(repo, n)
    write_notes(repo, moves, audit_entries(n))
    public = attestation.public_bytes(attestation.private_key())

    start = time.perf_counter()
    subprocess.run(["git", "-C", str(repo), "log", "--first-parent", "--format=%H %T %s", "main"],
                   capture_output=True, check=True)
    git_log = time.perf_counter() - start

    start = time.perf_counter()
    report = verify(repo, "main", every=True, fetch=False)
    end_to_end = time.perf_counter() - start
    assert report.counts() == {"verified": n, "before_provenance": 1}, report.counts()
    assert report.exit_code == 0, report.lines[-3:]

    start = time.perf_counter()
    core = verify_history(str(repo), "main", public)
    standalone = time.perf_counter() - start
    assert sum(v.status == "verified" for v in core) == n

    start = time.perf_counter()
    pure = verify_history(str(repo), "main", public, limit=100, pure=True)
    pure_seconds = time.perf_counter() - start
    assert all(v.ok for v in pure)

    baseline = {"baseline": f"git log --first-parent of the same {n + 1} commits", "unit_baseline": "moves/s",
                "baseline_value": rate(n + 1, git_log)}
    emit("provenance", [
        Figure(f"provenance verify --all, {n:,} main moves (signatures, subjects, traces, audit)",
               rate(n + 1, end_to_end), "moves/s", **baseline, note="aim >= 500/s"),
        Figure(f"standalone core (tools/verify-provenance.py, cryptography), {n:,} moves",
               rate(n + 1, standalone), "moves/s", **baseline),
        Figure("standalone core, pure-Python ed25519, 100 moves",
               rate(100, pure_seconds), "moves/s", **baseline),
    ])


if __name__ == "__main__":
    main()
