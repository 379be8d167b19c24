#!/usr/bin/env python3
"""Verify AgilePlus provenance with Python alone and the farm's public key.

    python3 tools/verify-provenance.py --key BASE64_PUBLIC_KEY [--repo PATH] [REF | --all]

Run it in a clone of the target repository after fetching the notes
(``git fetch origin 'refs/notes/*:refs/notes/*'``). It checks the DSSE signature of the
attestation note of REF (ed25519 over the DSSE pre-authentication encoding), that the in-toto
Statement's subject is REF's commit and tree, that each agent commit's Agent Trace note is the one
that was attested, and prints who wrote what and which checks passed. Exit 0: verified; 1:
tampered, foreign or wrong subject; 3: no provenance; 2: bad input.

Standard library only (this file is also ``agileplus.provenance.standalone``, the core of
``agileplus provenance verify``): ed25519 is verified with the ``cryptography`` package when it is
installed, else by the pure-Python RFC 8032 code below (slower, same answer).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field

ATTESTATION_NOTES = "refs/notes/agileplus-attestation"
TRACE_NOTES = "refs/notes/agent-trace"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://agileplus.dev/provenance/main-move/v1"

VERIFIED, FAILED, UNATTESTED, BAD_INPUT = 0, 1, 3, 2


@dataclass
class Verdict:
    """What verifying one commit found: ``status`` is verified, tampered, foreign_key,
    wrong_subject, malformed or no_provenance; ``reason`` says why in a sentence."""

    commit: str
    status: str
    reason: str = ""
    statement: dict = field(default_factory=dict)
    traces: dict = field(default_factory=dict)  # the attested Agent Trace records, by commit

    @property
    def ok(self) -> bool:
        return self.status in ("verified", "before_provenance")

    @property
    def exit_code(self) -> int:
        return VERIFIED if self.ok else UNATTESTED if self.status == "no_provenance" else FAILED


# --- DSSE and ed25519 ------------------------------------------------------------------------
def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:32]


def ed25519_verify(public: bytes, message: bytes, signature: bytes, *, pure: bool = False) -> bool:
    if not pure:
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            pure = True
    if pure:
        return _pure_verify(public, message, signature)
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


# RFC 8032 section 5.1, verification only, in extended coordinates.
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_GY = 4 * pow(5, _P - 2, _P) % _P


def _add(a: tuple, b: tuple) -> tuple:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa, bb = (y1 - x1) * (y2 - x2) % _P, (y1 + x1) * (y2 + x2) % _P
    cc, dd = 2 * t1 * t2 * _D % _P, 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _mul(s: int, point: tuple) -> tuple:
    result = (0, 1, 1, 0)
    while s:
        if s & 1:
            result = _add(result, point)
        point, s = _add(point, point), s >> 1
    return result


def _decompress(data: bytes) -> tuple | None:
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


def _equal(a: tuple, b: tuple) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _pure_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    point, r = _decompress(public), _decompress(signature[:32])
    if point is None or r is None or len(signature) != 64:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _L
    base = _decompress(_GY.to_bytes(32, "little"))
    return _equal(_mul(s, base), _add(r, _mul(h, point)))


# --- checking one note -----------------------------------------------------------------------
def check_envelope(text: str, public: bytes, commit: str, tree: str, *, pure: bool = False) -> Verdict:
    """The verdict on one attestation note's text for ``commit`` (whose tree is ``tree``)."""
    try:
        envelope = json.loads(text)
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope["signatures"]
        kind = envelope["payloadType"]
    except (ValueError, KeyError, TypeError):
        return Verdict(commit, "malformed", "the attestation note is not a DSSE envelope (edited, or written by "
                                           "something other than AgilePlus)")
    mine = key_id(public)
    ours = [s for s in signatures if isinstance(s, dict) and s.get("keyid") == mine]
    if not ours:
        theirs = ", ".join(str(s.get("keyid")) for s in signatures if isinstance(s, dict)) or "none"
        return Verdict(commit, "foreign_key", f"the envelope is signed by key {theirs}, not by this farm's key "
                                              f"{mine} (a rotated key, or a note written by someone else)")
    try:
        signature = base64.b64decode(ours[0]["sig"], validate=True)
    except (ValueError, KeyError, TypeError):
        signature = b""
    if kind != PAYLOAD_TYPE or not ed25519_verify(public, pae(kind, payload), signature, pure=pure):
        return Verdict(commit, "tampered", "the signature does not match the envelope: the note or its payload "
                                           "was changed after the farm signed it")
    statement = json.loads(payload)
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        return Verdict(commit, "malformed", "the signed payload is not an AgilePlus main-move Statement")
    digests = [s.get("digest", {}) for s in statement.get("subject", [])]
    if not any(d.get("gitCommit") == commit and d.get("gitTree") == tree for d in digests):
        named = ", ".join(d.get("gitCommit", "?")[:12] for d in digests)
        return Verdict(commit, "wrong_subject", f"the attestation names commit {named}, not {commit[:12]} with tree "
                                                f"{tree[:12]} (a note copied onto another commit, or a rewritten "
                                                "commit)", statement)
    return Verdict(commit, "verified", "signature and subject match", statement)


def check_traces(statement: dict, traces: dict[str, str]) -> str:
    """Empty when every attested Agent Trace note is present unchanged; else the reason."""
    for wp in statement.get("predicate", {}).get("workPackages", []):
        for sha, digest in (wp.get("agentTraces") or {}).items():
            text = traces.get(sha)
            if text is None:
                return f"the Agent Trace note of {sha[:12]} ({wp.get('wp')}) is missing"
            if hashlib.sha256(text.encode()).hexdigest() != digest:
                return f"the Agent Trace note of {sha[:12]} ({wp.get('wp')}) was edited after it was attested"
    return ""


def summary(verdict: Verdict) -> list[str]:
    """The human lines: who wrote what, which checks passed, which audit entry recorded the move."""
    if not verdict.ok:
        return [f"✗ {verdict.commit[:12]}: {verdict.status}: {verdict.reason}"]
    predicate = verdict.statement.get("predicate", {})
    lines = [f"✓ {verdict.commit[:12]}: main moved {predicate.get('from', '')[:12]} → {predicate.get('to', '')[:12]} "
             f"({predicate.get('repository', '')})"]
    for wp in predicate.get("workPackages", []):
        jobs = ", ".join(f"{j.get('harness')} {j.get('cliVersion') or ''} model {j.get('model') or '?'} "
                         f"session {j.get('sessionId') or '?'} (job {j.get('id')} attempt {j.get('attempt')})"
                         for j in wp.get("jobs", []))
        lines.append(f"  {wp.get('feature')}/{wp.get('wp')} {wp.get('title', '')}: {len(wp.get('agentTraces') or {})} "
                     f"agent commit(s) by {jobs or 'no recorded job'}")
        lines += [written_by(sha, verdict.traces[sha]) for sha in wp.get("agentTraces") or {} if sha in verdict.traces]
        if report := wp.get("reviewReport"):
            said = "approved" if report.get("approved") else "not approved"
            lines.append(f"    review report #{report.get('id')} {said} (sha256 {str(report.get('sha256'))[:16]}…)")
    checks = predicate.get("checks", [])
    passed = [c["name"] for c in checks if c.get("ok")]
    lines.append(f"  checks passed {len(passed)}/{len(checks)}: {', '.join(passed) or 'none'}")
    for entry in predicate.get("audit", []):
        lines.append(f"  audit entry {entry.get('feature')}#{entry.get('id')} {entry.get('transition', '')} "
                     f"{entry.get('hash', '')[:16]}…")
    return lines


def written_by(commit: str, record: dict) -> str:
    """One agent commit: its model, harness and job, and the lines it wrote per file."""
    farm = record.get("metadata", {}).get("dev.agileplus", {})
    files = record.get("files", [])
    model = next((c.get("contributor", {}).get("model_id") for f in files for c in f.get("conversations", [])), None)
    spans = ", ".join(f"{f.get('path')}:" + ",".join(f"{r.get('start_line')}-{r.get('end_line')}"
                                                     for c in f.get("conversations", []) for r in c.get("ranges", []))
                      for f in files[:8])
    more = f" and {len(files) - 8} more file(s)" if len(files) > 8 else ""
    return (f"    {commit[:12]} {model or 'model ?'} via {farm.get('harness', '?')} (job {farm.get('job', '?')}): "
            f"{spans or 'no lines added'}{more}")


# --- reading the repository ------------------------------------------------------------------
def git(repo: str, *args: str) -> str:
    proc = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
    if proc.returncode:
        raise LookupError(proc.stderr.strip() or f"git {' '.join(args)} failed")
    return proc.stdout


def notes_of(repo: str, ref: str) -> dict[str, str]:
    """Every note of ``ref`` as {commit: text}, read with two git processes whatever the count."""
    try:
        listing = git(repo, "notes", "--ref", ref, "list").split()
    except LookupError:
        return {}
    blobs, commits = listing[0::2], listing[1::2]
    if not blobs:
        return {}
    proc = subprocess.run(["git", "-C", repo, "cat-file", "--batch"], input="\n".join(blobs).encode() + b"\n",
                          capture_output=True, check=True)
    texts, out, at = {}, proc.stdout, 0
    for blob in blobs:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        texts[blob] = out[header_end + 1:header_end + 1 + size].decode()
        at = header_end + 1 + size + 1
    return {commit: texts[blob] for blob, commit in zip(blobs, commits, strict=True)}


def first_parent(repo: str, ref: str, *, limit: int | None = None) -> list[tuple[str, str]]:
    """(commit, tree) of ``ref`` and its first-parent ancestors, newest first."""
    args = ["log", "--first-parent", "--format=%H %T", *([f"-{limit}"] if limit else []), ref, "--"]
    return [tuple(line.split()) for line in git(repo, *args).splitlines()]


def verify_history(repo: str, ref: str, public: bytes, *, limit: int | None = None,
                   pure: bool = False) -> list[Verdict]:
    """A verdict per first-parent commit of ``ref`` (one for ``ref`` alone with ``limit=1``). An
    envelope shared by the commits of one batch is checked once."""
    attestations, traces = notes_of(repo, ATTESTATION_NOTES), notes_of(repo, TRACE_NOTES)
    checked: dict[str, Verdict] = {}
    verdicts = []
    for commit, tree in first_parent(repo, ref, limit=limit):
        text = attestations.get(commit)
        if text is None:
            verdicts.append(Verdict(commit, "no_provenance", "no attestation note: main moved outside the farm's "
                                                            "merge queue, or the notes were not fetched"))
            continue
        cache = f"{hashlib.sha256(text.encode()).hexdigest()}:{commit}:{tree}"
        verdict = checked.get(cache) or check_envelope(text, public, commit, tree, pure=pure)
        if verdict.ok and (problem := check_traces(verdict.statement, traces)):
            verdict = Verdict(commit, "tampered", problem, verdict.statement)
        elif verdict.ok:
            attested = [sha for wp in verdict.statement["predicate"].get("workPackages", [])
                        for sha in wp.get("agentTraces") or {}]
            verdict.traces = {sha: json.loads(traces[sha]) for sha in attested}
        checked[cache] = verdict
        verdicts.append(verdict)
    # History older than the first attested move predates the farm: said, not failed.
    if any(v.status != "no_provenance" for v in verdicts):
        for verdict in reversed(verdicts):
            if verdict.status != "no_provenance":
                break
            verdict.status, verdict.reason = "before_provenance", "older than the first attested move"
    return verdicts


def parse_key(text: str) -> bytes:
    """A public key given as base64 (what ``agileplus provenance key`` prints), or a file holding it."""
    candidate = text.strip()
    try:
        with open(candidate) as handle:
            candidate = handle.read().split()[-1]
    except OSError:
        pass
    try:
        public = base64.b64decode(candidate, validate=True)
    except ValueError:
        public = b""
    if len(public) != 32:
        raise ValueError("--key: expected the farm's ed25519 public key, 32 bytes in base64 (what "
                         "`agileplus provenance key` prints), or a file holding it")
    return public


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", nargs="?", default="HEAD")
    parser.add_argument("--key", required=True, help="the farm's public key (base64) or a file holding it")
    parser.add_argument("--repo", default=".")
    parser.add_argument("--all", action="store_true", help="every first-parent commit of REF")
    parser.add_argument("--pure", action="store_true", help="pure-Python ed25519 even if cryptography is installed")
    args = parser.parse_args(argv)
    try:
        public = parse_key(args.key)
        git(args.repo, "rev-parse", "--verify", "--quiet", f"{args.ref}^{{commit}}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except LookupError:
        print(f"error: REF: {args.ref} is not a commit in {args.repo} (give a branch, tag or commit of that clone)",
              file=sys.stderr)
        return BAD_INPUT
    verdicts = verify_history(args.repo, args.ref, public, limit=None if args.all else 1, pure=args.pure)
    for verdict in verdicts:
        print("\n".join(summary(verdict)))
    return max((v.exit_code for v in verdicts), default=VERIFIED)


if __name__ == "__main__":
    sys.exit(main())
