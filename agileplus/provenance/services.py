"""Provenance that travels with the code: the steps the worker and the merge queue call.

- ``note_agent_commits``: after the runner pushed an agent's commits, one Agent Trace note per
  commit on the origin (written by the worker, never by the agent).
- ``carry_agent_traces``: after a branch is rebased, its notes follow the rewritten commits.
- ``attest_main_move``: after the merge queue moved main, a signed in-toto Statement naming the
  WPs, jobs, models, usage, checks, review reports and audit entries, stored in the database and
  as the attestation note of each first-parent commit the move added.

Each is best effort by design: main already moved (or the branch was already pushed) when it
runs, so a failure is logged and leaves the commit without provenance, which ``verify`` reports.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from django.conf import settings

from agileplus.audit.models import AuditEntry
from agileplus.core.canonical import sha256_hex
from agileplus.core.errors import DomainError
from agileplus.dispatch.models import DispatchJob, ModelCall
from agileplus.provenance import agent_trace, attestation, notes
from agileplus.provenance.models import Attestation
from agileplus.provenance.standalone import notes_of
from agileplus.review.models import ReviewReport
from harnesses.git import git, redact_url

log = logging.getLogger("agileplus.provenance")


# --- Agent Trace notes -------------------------------------------------------------------------
def note_agent_commits(job: DispatchJob, mirror: Path, base: str, head: str) -> list[str]:
    """An Agent Trace note on the origin for each commit of ``base..head`` not noted yet; the
    commits noted."""
    try:
        commits = git("rev-list", "--reverse", "--no-merges", f"{base}..{head}", cwd=mirror).split()
        facts, model = job_facts(job), job_model(job)
        url = f"{settings.REMOTE_URL or 'agileplus:'}/api/jobs/{job.id}/log?attempt={job.attempt}"
        records = {sha: agent_trace.record_text(agent_trace.trace_record(
            sha, agent_trace.added_ranges(mirror, sha), conversation_url=url, model=model, farm=facts))
            for sha in commits}
        # A commit noted by an earlier attempt (resumed, or pushed already) keeps its first note.
        return notes.write_notes(mirror, notes.TRACE_NOTES, records, keep_existing=True)
    except Exception as exc:  # noqa: BLE001 - the branch is pushed; a missing note must not fail the job
        log.warning("job %s: Agent Trace notes not written: %s", job.id, exc)
        return []


def job_model(job: DispatchJob) -> str:
    call = ModelCall.objects.filter(job=job).exclude(model="").order_by("-id").first()
    return (call.model if call else "") or (job.result or {}).get("model") or (job.manifest or {}).get("model") or ""


def job_facts(job: DispatchJob) -> dict:
    manifest = job.manifest or {}
    return {"harness": job.harness, "cli_version": manifest.get("cli_version", ""), "session_id": job.session_id,
            "job": job.id, "attempt": job.attempt, "feature": job.feature.slug, "wp": job.wp.code,
            "worker": job.worker, "manifest_hash": manifest.get("hash", "")}


def carry_agent_traces(path: Path, onto: str, old_head: str, new_head: str) -> dict[str, str]:
    """A branch was rebased onto ``onto``: its Agent Trace notes follow (``notes.carry_trace_notes``)."""
    return notes.carry_trace_notes(path, onto, old_head, new_head)


def trace_job(job: DispatchJob) -> int:
    """A finished job's OpenTelemetry GenAI spans over OTLP, when ``OTEL_EXPORTER_OTLP_ENDPOINT``
    is set (``otel.export_job``); the spans sent. Best effort: a collector that is down is logged."""
    if not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return 0
    from agileplus.provenance import otel  # late: 0.4 s of OpenTelemetry SDK, only where an endpoint is set

    try:
        return otel.export_job(job)
    except Exception as exc:  # noqa: BLE001 - the job is finished; its telemetry must not undo that
        log.warning("job %s: OpenTelemetry spans not exported: %s", job.id, exc)
        return 0


# --- attestation of a main move --------------------------------------------------------------------
def attest_main_move(path: Path, repo: str, main: str, from_sha: str, to_sha: str, entries: list,
                     results: list) -> Attestation | None:
    """Sign and store the Statement of main moving ``from_sha`` → ``to_sha``, then write it as the
    note of each first-parent commit added. ``entries``: the merge queue entries merged
    (``.wp``, ``.head_sha``, ``.outcome``); ``results``: the checks the candidate passed."""
    try:
        key = attestation.private_key()
    except DomainError as exc:
        log.warning("main move %s not attested: %s", to_sha[:12], exc.message)
        return None
    try:
        added = git("rev-list", "--first-parent", "--reverse", f"{from_sha}..{to_sha}", cwd=path).split()
        subjects = [attestation.commit_subject(redact_url(repo), sha, git("rev-parse", f"{sha}^{{tree}}", cwd=path))
                    for sha in added]
        traces = notes_of(str(path), notes.TRACE_NOTES) if notes.fetch_notes(path, notes.TRACE_NOTES) else {}
        predicate = move_predicate(path, redact_url(repo), main, from_sha, to_sha, entries, results, traces)
        envelope = attestation.sign(attestation.statement(subjects, predicate), key)
        row, _ = Attestation.objects.update_or_create(
            repo=redact_url(repo), commit_sha=to_sha,
            defaults={"from_sha": from_sha, "envelope": envelope, "key_id": envelope["signatures"][0]["keyid"]})
        notes.write_notes(path, notes.ATTESTATION_NOTES, dict.fromkeys(added, attestation.envelope_text(envelope)))
        Attestation.objects.filter(pk=row.pk).update(noted=True)
        return row
    except Exception as exc:  # noqa: BLE001 - main moved already; the queue must go on (verify reports the gap)
        log.warning("main move %s: attestation not written: %s", to_sha[:12], exc)
        return None


def move_predicate(path: Path, repo: str, main: str, from_sha: str, to_sha: str, entries: list, results: list,
                   traces: dict[str, str]) -> dict:
    wps = [wp_facts(path, from_sha, entry, traces) for entry in entries]
    features = {entry.wp.feature_id for entry in entries}
    moved = [e for e in AuditEntry.objects.filter(feature_id__in=features, transition="merge_queue:main_moved")
             .select_related("feature").order_by("-id")[:50] if (e.metadata or {}).get("candidate") == to_sha]
    return {
        "repository": repo, "branch": main, "from": from_sha, "to": to_sha,
        "candidates": sorted({(e.outcome or {}).get("merge", {}).get("merge_sha") or to_sha for e in entries}),
        "workPackages": wps,
        "checks": [{"name": r.name, "section": r.section, "ok": r.ok, "figures": r.figures} for r in results],
        "audit": [*({"feature": e.feature.slug, "id": e.seq, "hash": e.hash, "transition": e.transition}
                    for e in reversed(moved)), *(wp["doneEntry"] for wp in wps if wp["doneEntry"])],
        "usage": _totals([job["usage"] for wp in wps for job in wp["jobs"]]),
    }


def wp_facts(path: Path, from_sha: str, entry, traces: dict[str, str]) -> dict:
    wp = entry.wp
    commits = git("rev-list", "--reverse", "--no-merges", f"{from_sha}..{entry.head_sha}", cwd=path).split() \
        if entry.head_sha else []
    report = ReviewReport.objects.filter(wp=wp).order_by("-created_at", "-id").first()
    done = AuditEntry.objects.filter(pk=(entry.outcome or {}).get("transition_entry_id")).first()
    jobs = DispatchJob.objects.filter(wp=wp).order_by("queued_at")
    return {
        "feature": wp.feature.slug, "wp": wp.code, "title": wp.title, "branch": wp.branch_name,
        "head": entry.head_sha,
        "agentTraces": {sha: hashlib.sha256(traces[sha].encode()).hexdigest() for sha in commits if sha in traces},
        "unattributedCommits": [sha for sha in commits if sha not in traces],
        "jobs": [{"id": job.id, "attempt": job.attempt, "state": job.state, "harness": job.harness,
                  "cliVersion": (job.manifest or {}).get("cli_version", ""), "model": job_model(job),
                  "sessionId": job.session_id, "usage": _numbers(job.usage or {})} for job in jobs],
        "reviewReport": {"id": report.pk, "approved": report.approved, "sha256": sha256_hex(
            {"checks": report.checks, "text": report.text, "head": report.head_sha})} if report else None,
        "doneEntry": {"feature": wp.feature.slug, "id": done.seq, "hash": done.hash, "transition": done.transition}
        if done else None,
    }


def _numbers(usage: dict) -> dict:
    return {k: v for k, v in usage.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _totals(usages: list[dict]) -> dict:
    total: dict = {}
    for usage in usages:
        for name, value in usage.items():
            total[name] = round(total.get(name, 0) + value, 6)
    return total


def export_attestations(repo: str | None = None) -> list[dict]:
    """Every stored attestation (of one repository), oldest first: what ``provenance export`` prints."""
    rows = Attestation.objects.all()
    if repo:
        rows = rows.filter(repo=redact_url(repo))
    return [{"repo": r.repo, "commit": r.commit_sha, "from": r.from_sha, "key_id": r.key_id, "noted": r.noted,
             "created_at": r.created_at.isoformat(), "envelope": r.envelope} for r in rows]
