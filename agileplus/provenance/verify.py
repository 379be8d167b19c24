"""``agileplus provenance verify``: the standalone checks (signature, subject, Agent Trace notes;
``standalone.verify_history``) with the farm's key, plus what only the farm can check: each
attested audit entry still has the attested hash, and its feature's chain verifies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.core.errors import DomainError, RepositoryUnavailable
from agileplus.features.models import Feature
from agileplus.provenance import attestation, notes
from agileplus.provenance.standalone import Verdict, summary, verify_history
from harnesses.git import GitError, git


@dataclass
class Report:
    verdicts: list[Verdict]
    lines: list[str]

    @property
    def exit_code(self) -> int:
        return max((v.exit_code for v in self.verdicts), default=0)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for verdict in self.verdicts:
            counts[verdict.status] = counts.get(verdict.status, 0) + 1
        return counts


def verify(repo: Path, ref: str, *, every: bool = False, fetch: bool = True) -> Report:
    """The verdict on ``ref`` (``every``: on each commit of its first-parent history) in the clone at ``repo``."""
    public = attestation.public_bytes(attestation.private_key())
    try:
        git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo)
    except (GitError, OSError):
        raise DomainError(f"{ref} is not a commit of the repository at {repo}", field="REF",
                          fix="give a branch, tag or commit of that clone (--repo PATH names the clone)") from None
    if fetch and "origin" in git("remote", cwd=repo, check=False).split():
        try:
            for ref_name in (notes.ATTESTATION_NOTES, notes.TRACE_NOTES):
                notes.fetch_notes(repo, ref_name, prune=False)  # a clone's own notes are never deleted
        except GitError as exc:
            raise RepositoryUnavailable(f"the notes could not be fetched from origin: {str(exc)[-300:]}",
                                        field="origin", fix="check the clone's origin, or verify the notes the "
                                                            "clone has with --no-fetch") from None
    verdicts = verify_history(str(repo), ref, public, limit=None if every else 1)
    audited = check_audit(verdicts)
    lines = [line for v in verdicts if not every or not v.ok or v.status != "before_provenance"
             for line in summary(v)]
    return Report(verdicts, [*lines, *audited])


def check_audit(verdicts: list[Verdict]) -> list[str]:
    """Each attested audit entry against this farm's database: a hash that differs fails the
    verdict; a feature this database does not hold is said (another farm, or none reachable)."""
    wanted = {(a.get("feature"), a.get("id")) for v in verdicts if v.ok
              for a in v.statement.get("predicate", {}).get("audit", [])}
    if not wanted:
        return []
    slugs = {slug for slug, _ in wanted}
    stored = {(e.feature.slug, e.seq): e.hash for e in AuditEntry.objects.filter(feature__slug__in=slugs)
              .select_related("feature") if (e.feature.slug, e.seq) in wanted}
    chains = {f.slug: verify_chain(f) for f in Feature.objects.filter(slug__in=slugs)}
    lines, unknown = [], sorted(slugs - chains.keys())
    for verdict in (v for v in verdicts if v.ok):
        for entry in verdict.statement.get("predicate", {}).get("audit", []):
            slug, seq = entry.get("feature"), entry.get("id")
            if slug in unknown:
                continue
            if stored.get((slug, seq)) != entry.get("hash"):
                verdict.status, verdict.reason = "tampered", f"audit entry {slug}#{seq} does not have the attested hash"
            elif not chains[slug].ok:
                verdict.status, verdict.reason = "tampered", f"the audit chain of {slug} does not verify"
            if not verdict.ok:
                lines.append(f"✗ {verdict.commit[:12]}: {verdict.reason}")
                break
    if unknown:
        lines.append(f"  audit not checked for {', '.join(unknown)}: not in this farm's database")
    else:
        lines.append("  audit entries match the farm's chain")
    return lines
