"""An agent's CLI session kept in the database, so the next attempt resumes it on any worker.

While an agent runs, the CLI's session folder (``HarnessAdapter.session_folder``: Claude Code's
``~/.claude/projects``, Codex's ``~/.codex/sessions``, Gemini CLI's ``~/.gemini/tmp/<slug>/chats``,
opencode's ``~/.local/share/opencode``, Aider's ``~/.aider-sessions``) is a per-attempt host folder
bound into the sandbox's HOME (``harnesses/sandbox.py: SandboxSpec.home_folders``). At each
heartbeat and at the end of the run, ``SessionCapture`` packs it (gzip'd tar,
``AGENT_SESSION_MAX_BYTES`` cap) into the WP's ``AgentSession`` row with the session id from the
stream (Aider prints none: its adapter names the session and announces the id). The next run of
the WP on that harness (a lost worker, a timeout, a budget stop, a rate limit, changes requested)
restores the files into its own sandbox HOME and starts the CLI with its resume flag; a harness
that cannot resume gets a fresh session with the previous attempt's last log lines in its prompt.

Stored intact (the CLI reads it back); shown only redacted (``session_summary``). Deleted when the
WP is done or ``AGENT_SESSION_RETENTION_DAYS`` after its last write (``purge_sessions``, run by the
reaper).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import threading
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from agileplus.core.errors import NotFound
from agileplus.core.redaction import redact
from agileplus.dispatch.claims import Claim, held_job
from agileplus.dispatch.models import AgentSession, DispatchJob, JobLogLine, JobState
from agileplus.features.lifecycles import WPState
from agileplus.features.models import WorkPackage
from harnesses.registry import adapter_names, get_adapter
from harnesses.sessions import SessionTooLarge, SessionUnsettled, member_texts, pack_folder, unpack_folder

SUMMARY_LOG_LINES = 15


def previous_session(job: DispatchJob) -> AgentSession | None:
    """The WP's session on the job's harness, which this run continues; none for a replay
    (it repeats another run's exact prompt)."""
    if (job.result or {}).get("replay_of"):
        return None
    return AgentSession.objects.select_related("job").filter(wp_id=job.wp_id, harness=job.harness).first()


def discard_sessions(wp: WorkPackage) -> int:
    """Forget the WP's sessions: its next run starts fresh."""
    return AgentSession.objects.filter(wp=wp).delete()[0]


def purge_sessions(now: dt.datetime | None = None) -> int:
    """Delete the sessions of done WPs and those not written for AGENT_SESSION_RETENTION_DAYS."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.AGENT_SESSION_RETENTION_DAYS)
    return AgentSession.objects.filter(Q(wp__state=WPState.DONE) | Q(updated_at__lt=cutoff)).delete()[0]


def store_session(claim: Claim, *, harness: str, session_id: str, data: bytes | None, files: int = 0,
                  raw_bytes: int = 0, note: str = "") -> bool:
    """Write the attempt's session (fenced: only while ``claim`` holds the job). False if not held."""
    job = held_job(claim)
    if job is None:
        return False
    AgentSession.objects.update_or_create(wp_id=job.wp_id, harness=harness, defaults={
        "session_id": session_id[:200], "job": job, "attempt": claim.attempt, "worker": claim.worker,
        "files": data, "files_sha256": hashlib.sha256(data).hexdigest() if data else "", "files_count": files,
        "raw_bytes": raw_bytes, "note": note[:300]})
    return True


class SessionCapture:
    """The host side of the CLI's session folder for one attempt: ``capture`` stores it when
    the session id or the files changed since the last write (called from the heartbeat thread
    and at the end of the run, hence the lock)."""

    def __init__(self, claim: Claim, harness: str, folder: Path, databases: tuple[str, ...] = ()):
        self.claim, self.harness, self.folder, self.databases = claim, harness, folder, databases
        self.session_id = ""
        self.stored: tuple[str, str] | None = None
        self.lock = threading.Lock()
        self.closed = False  # the last capture was taken and the folder removed

    def restore(self, session: AgentSession) -> list[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        return unpack_folder(bytes(session.files), self.folder) if session.files else []

    def capture(self) -> bool:
        with self.lock:
            # Closed: a heartbeat after the run's last capture would store the removed (empty)
            # folder over the session the next attempt resumes.
            if self.closed or not self.session_id:
                return False
            note, data, files, raw = "", None, 0, 0
            try:
                packed = pack_folder(self.folder, settings.AGENT_SESSION_MAX_BYTES, self.databases)
            except SessionUnsettled:
                return False  # mid-write: the last stored capture stays, the next one will do
            except SessionTooLarge as exc:
                packed, note = None, f"{exc} (AGILEPLUS_AGENT_SESSION_MAX_BYTES): not kept, a next attempt starts fresh"
            if packed is not None:
                data, files, raw = packed.data, packed.files, packed.raw_bytes
            key = (self.session_id, hashlib.sha256(data).hexdigest() if data else note)
            if key == self.stored:
                return False
            if store_session(self.claim, harness=self.harness, session_id=self.session_id, data=data, files=files,
                             raw_bytes=raw, note=note):
                self.stored = key
                return True
            return False

    def remove(self) -> None:
        with self.lock:
            self.closed = True
            shutil.rmtree(self.folder, ignore_errors=True)


def what_happened(session: AgentSession, job: DispatchJob) -> str:
    """How the session's last run ended, in a few words, for the prompt that resumes it."""
    previous = session.job
    if previous is None:
        return "it ended"
    if previous.pk == job.pk:
        parked = (job.result or {}).get("parked") or {}
        if parked.get("attempt") == session.attempt:
            return f"rate limited; waited {parked.get('seconds')} s for the reset"
        return f"the worker was lost (attempt {session.attempt} ended without finishing)"
    if previous.state == JobState.TIMED_OUT:
        return f"timeout after {previous.timeout_seconds} s"
    if previous.state == JobState.SUCCEEDED:
        return "you finished and your work was reviewed"
    if previous.state == JobState.CANCELLED:
        return "it was cancelled"
    reason = (previous.current_activity or previous.state).replace("_", " ")
    return f"{reason}: {redact(previous.error)[:200]}" if previous.error else reason


def resume_prompt(session: AgentSession, job: DispatchJob, notes: list[str]) -> str:
    """What the resumed session is told: what happened, and to continue on the same branch."""
    wp = job.wp
    lines = [f"Your previous session on worker {session.worker or 'unknown'} ended: {what_happened(session, job)}.",
             f"Continue work package {wp.code} ({wp.title}) where you left off, on the same branch. Commits "
             "that reached the origin are there; work not committed then is gone: look at the branch's files "
             "and its history, redo what is missing, and commit your work.",
             *notes]
    return "\n".join(line for line in lines if line)


def log_summary(session: AgentSession, lines: int = SUMMARY_LOG_LINES) -> list[str]:
    """The previous attempt's last log lines (already redacted when written), for a harness
    that cannot resume: its fresh session starts from them."""
    if session.job_id is None:
        return []
    tail = list(JobLogLine.objects.filter(job_id=session.job_id, attempt=session.attempt)
                .order_by("-seq").values_list("line", flat=True)[:lines])
    if not tail:
        return []
    return [f"Your previous session on worker {session.worker or 'unknown'} ended; its last log lines:",
            *(f"  {line[:300]}" for line in reversed(tail))]


def resuming_harnesses() -> list[str]:
    """The harnesses whose next run resumes a stored session (``HarnessAdapter.resumes``)."""
    return [name for name in adapter_names() if get_adapter(name).resumes]


def job_session(job_id: str) -> AgentSession:
    """The stored session a job's WP has on the job's harness (what its next run resumes)."""
    job = DispatchJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"no job {job_id}", field="job", fix="`agileplus jobs list` shows the jobs")
    session = AgentSession.objects.select_related("wp").filter(wp_id=job.wp_id, harness=job.harness).first()
    if session is None:
        raise NotFound(f"no stored {job.harness} session for {job.wp.code}", field="job",
                       fix=f"a session is stored while a resuming harness ({', '.join(resuming_harnesses())}) "
                           "runs; it is deleted once the WP is done")
    return session


def session_summary(session: AgentSession, tail_lines: int = 5) -> dict:
    """What is shown of a stored session (CLI, API, logs): secrets redacted, only the last lines."""
    texts = member_texts(bytes(session.files)) if session.files else {}
    tails = {name: [redact(line)[:500] for line in text.splitlines()[-tail_lines:]] for name, text in texts.items()}
    return {"wp": session.wp.code, "harness": session.harness, "session_id": session.session_id,
            "job_id": session.job_id, "attempt": session.attempt, "worker": session.worker,
            "files": session.files_count, "raw_bytes": session.raw_bytes,
            "stored_bytes": len(session.files) if session.files else 0, "note": session.note,
            "updated_at": session.updated_at.isoformat(), "tails": tails}
