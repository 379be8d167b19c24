"""The stored agent session: written only by the attempt that holds the job, shown redacted,
kept intact for the CLI, deleted when its WP is done or past its retention."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from agileplus.dispatch import claims, services, sessions
from agileplus.dispatch.models import AgentSession
from agileplus.features.models import WorkPackage
from harnesses.sessions import member_texts, pack_folder
from tests.factories import make_feature_with_wps
from tests.support.cli import run_cli

pytestmark = pytest.mark.django_db

SECRET = "sk-ant-api03-Zx9Qw8Er7Ty6Ui5Op"


@pytest.fixture
def claim():
    _feature, [wp] = make_feature_with_wps(1)
    job = services.enqueue_job(wp, harness="claude-code", actor="human:alice", send=False)
    return services.claim_job(job.id, "worker@w1")


def transcript(tmp_path, text: str) -> bytes:
    folder = tmp_path / "projects" / "-work-repo"
    folder.mkdir(parents=True)
    (folder / "s-1.jsonl").write_text(text)
    return pack_folder(tmp_path / "projects", 1 << 20).data


def test_the_attempt_holding_the_job_stores_its_session_for_the_wp(claim, tmp_path):
    data = transcript(tmp_path, '{"type":"user"}\n')

    assert sessions.store_session(claim, harness="claude-code", session_id="s-1", data=data, files=1)

    stored = AgentSession.objects.get()
    assert (stored.session_id, stored.worker, stored.attempt, bytes(stored.files)) == ("s-1", "worker@w1", 1, data)


def test_a_fenced_attempt_cannot_overwrite_the_session(claim, tmp_path):
    stale = claims.Claim(claim.job_id, claim.attempt + 1, "worker@w2")

    assert not sessions.store_session(stale, harness="claude-code", session_id="s-2", data=None)
    assert not AgentSession.objects.exists()


def test_the_transcript_is_kept_intact_and_shown_redacted(claim, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    data = transcript(tmp_path, f'{{"type":"user","text":"key {SECRET}"}}\n')
    sessions.store_session(claim, harness="claude-code", session_id="s-1", data=data, files=1)
    stored = AgentSession.objects.get()

    shown = sessions.session_summary(stored)

    assert SECRET in member_texts(bytes(stored.files))["-work-repo/s-1.jsonl"]  # what the CLI reads back
    assert SECRET not in str(shown) and "***" in shown["tails"]["-work-repo/s-1.jsonl"][0]


def test_sessions_of_done_wps_and_past_retention_are_purged(claim, tmp_path, settings):
    settings.AGENT_SESSION_RETENTION_DAYS = 14
    sessions.store_session(claim, harness="claude-code", session_id="s-1", data=None)
    kept = sessions.purge_sessions()
    WorkPackage.objects.update(state="done")

    assert (kept, sessions.purge_sessions()) == (0, 1)


def test_a_session_not_written_for_the_retention_period_is_purged(claim, settings):
    settings.AGENT_SESSION_RETENTION_DAYS = 14
    sessions.store_session(claim, harness="claude-code", session_id="s-1", data=None)

    assert sessions.purge_sessions(now=timezone.now() + dt.timedelta(days=15)) == 1


def test_the_resume_prompt_says_the_worker_was_lost_for_the_same_job(claim):
    sessions.store_session(claim, harness="claude-code", session_id="s-1", data=None)
    stored = AgentSession.objects.select_related("job").get()

    text = sessions.resume_prompt(stored, stored.job, ["Changes requested: tests fail"])

    assert text.startswith("Your previous session on worker worker@w1 ended: the worker was lost (attempt 1")
    assert text.endswith("Changes requested: tests fail")


def test_jobs_session_shows_the_stored_session_redacted(claim, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    data = transcript(tmp_path, f'{{"type":"user","text":"key {SECRET}"}}\n')
    sessions.store_session(claim, harness="claude-code", session_id="s-1", data=data, files=1, raw_bytes=40)

    shown = run_cli(["jobs", "session", claim.job_id])

    assert shown.exit_code == 0, shown.output
    assert "Session: s-1 (claude-code, WP01)" in shown.output and "-work-repo/s-1.jsonl:" in shown.output
    assert SECRET not in shown.output


def test_jobs_session_of_a_wp_without_one_says_why(claim):
    shown = run_cli(["jobs", "session", claim.job_id])

    assert shown.exit_code != 0 and "no stored claude-code session for WP01" in shown.output


def test_jobs_session_of_a_wp_without_one_names_the_harnesses_that_store_one(claim):
    shown = run_cli(["jobs", "session", claim.job_id])

    assert "a resuming harness (aider, claude-code, codex, gemini, opencode) runs" in shown.output


def test_a_heartbeat_after_the_runs_last_capture_keeps_the_stored_session(claim, tmp_path):
    """The run takes its last capture and removes the folder; a heartbeat still in flight must
    not store the empty folder over the session the next attempt resumes."""
    folder = tmp_path / "session"
    (folder / "projects" / "-work-repo").mkdir(parents=True)
    (folder / "projects" / "-work-repo" / "s-1.jsonl").write_text('{"type":"user"}\n')
    capture = sessions.SessionCapture(claim, "claude-code", folder)
    capture.session_id = "s-1"
    assert capture.capture()

    capture.remove()

    assert not capture.capture()  # the late heartbeat
    assert member_texts(bytes(AgentSession.objects.get().files))
