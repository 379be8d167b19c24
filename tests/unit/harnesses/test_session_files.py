"""The agent CLI's session folder, carried between workers: what each adapter says about its
session (where the files are, the id in its stream, the resume flag), and the archive's cap and
its refusal of what a hostile agent leaves in the folder."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from harnesses import sessions
from harnesses.base import HarnessError, RunSpec
from harnesses.registry import get_adapter
from harnesses.sessions import (
    SessionTooLarge,
    SessionUnsettled,
    member_texts,
    pack_folder,
    safe_member_name,
    unpack_folder,
)
from tests.support.streams import recorded


@pytest.mark.parametrize(("harness", "kind", "field"), [("claude-code", "system", "session_id"),
                                                         ("codex", "thread.started", "thread_id"),
                                                         ("gemini", "init", "session_id"),
                                                         ("opencode", "step_start", "sessionID")])
def test_the_session_id_is_read_from_the_real_cli_s_recorded_stream(harness, kind, field):
    adapter = get_adapter(harness)
    [line] = [line for line in recorded(harness).lines if json.loads(line).get("type") == kind][:1]

    [init] = adapter.parse_line(line)

    assert init.kind == "init" and init.session_id == json.loads(line)[field]


@pytest.mark.parametrize(("harness", "folder", "resume_args"), [
    ("claude-code", ".claude/projects", ["--resume", "S-1"]),
    ("codex", ".codex/sessions", ["resume", "S-1"]),
    ("gemini", ".gemini/tmp/worktree/chats", ["--resume", "S-1"]),
    ("opencode", ".local/share/opencode", ["--session", "S-1"]),
    ("aider", ".aider-sessions", ["/tmp/home/.aider-sessions/S-1.chat.history.md", "--restore-chat-history"]),
])
def test_a_resuming_adapter_names_its_session_folder_and_its_resume_flag(standins, harness, folder, resume_args,
                                                                         tmp_path):
    adapter = get_adapter(harness)
    workdir = tmp_path / "worktree"
    spec = RunSpec(prompt="go", workdir=workdir, resume_session="S-1", session_dir=f"/tmp/home/{folder}")
    argv = adapter.build_command(spec).argv

    assert adapter.resumes and adapter.session_folder(workdir) == folder
    assert any(argv[i:i + len(resume_args)] == resume_args for i in range(len(argv)))


@pytest.mark.parametrize(("worktree", "folder"), [("003-auth-system-WP01", "003-auth-system-wp01"),
                                                  ("My  Repo_v2.", "my-repo-v2"), ("---", "project")])
def test_gemini_s_session_folder_is_its_project_slug_of_the_worktree_name_on_any_worker(worktree, folder, tmp_path):
    adapter = get_adapter("gemini")

    assert (adapter.session_folder(tmp_path / "w1" / worktree) == adapter.session_folder(tmp_path / "w2" / worktree)
            == f".gemini/tmp/{folder}/chats")


def opencode_store(folder: Path, sessions: dict[str, str]) -> Path:
    """An opencode 1.18.33 session store: its ``session`` table (the columns that matter here)."""
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(folder / "opencode.db")) as db:
        db.execute("CREATE TABLE session (id text PRIMARY KEY, directory text NOT NULL)")
        db.executemany("INSERT INTO session VALUES (?, ?)", sessions.items())
        db.commit()
    return folder / "opencode.db"


def test_opencode_s_restored_session_is_moved_to_the_new_worktree_and_no_other(tmp_path):
    database = opencode_store(tmp_path / "store", {"ses_1": "/w1/.worktrees/wp01", "ses_2": "/w1/.worktrees/wp02"})

    get_adapter("opencode").adopt_session(tmp_path / "store", Path("/w2/.worktrees/wp01"), "ses_1")

    with contextlib.closing(sqlite3.connect(database)) as db:
        assert dict(db.execute("SELECT id, directory FROM session")) == {"ses_1": "/w2/.worktrees/wp01",
                                                                         "ses_2": "/w1/.worktrees/wp02"}


def test_an_opencode_session_store_that_is_not_a_database_is_refused_by_name(tmp_path):
    (tmp_path / "opencode.db").write_bytes(b"not sqlite" * 100)

    with pytest.raises(HarnessError, match="opencode.*restored session database cannot be read"):
        get_adapter("opencode").adopt_session(tmp_path, Path("/w2/wp01"), "ses_1")


def test_opencode_runs_without_undo_snapshots_so_its_session_folder_holds_only_the_session(standins, tmp_path):
    invocation = get_adapter("opencode").build_command(RunSpec(prompt="go", workdir=tmp_path))

    assert json.loads(invocation.env["OPENCODE_CONFIG_CONTENT"]) == {"snapshot": False}


def test_an_adapter_whose_session_files_were_not_verified_says_it_does_not_resume(tmp_path):
    adapter = get_adapter("command")

    assert not adapter.resumes and adapter.session_folder(tmp_path) is None


def test_the_folder_round_trips_through_the_archive(tmp_path):
    (tmp_path / "in" / "-work-repo").mkdir(parents=True)
    (tmp_path / "in" / "-work-repo" / "abc.jsonl").write_text('{"type":"user"}\n')

    packed = pack_folder(tmp_path / "in", max_bytes=1 << 20)
    written = unpack_folder(packed.data, tmp_path / "out")

    assert written == ["-work-repo/abc.jsonl"] and packed.files == 1
    assert (tmp_path / "out" / "-work-repo" / "abc.jsonl").read_text() == '{"type":"user"}\n'


def test_a_session_over_the_cap_is_refused_whole_not_truncated(tmp_path):
    (tmp_path / "t.jsonl").write_bytes(os.urandom(5000))  # random: compression cannot bring it under

    with pytest.raises(SessionTooLarge, match="exceed 4096 bytes"):
        pack_folder(tmp_path, max_bytes=4096)


def test_symlinks_the_agent_leaves_in_its_session_folder_are_not_followed(tmp_path):
    secret = tmp_path / "worker-secrets.env"
    secret.write_text("TOKEN=worker-only")
    folder = tmp_path / "session"
    folder.mkdir()
    (folder / "t.jsonl").write_text("{}\n")
    (folder / "leak.jsonl").symlink_to(secret)
    (folder / "dir").symlink_to(tmp_path)

    texts = member_texts(pack_folder(folder, max_bytes=1 << 20).data)

    assert texts == {"t.jsonl": "{}\n"}


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b", ""])
def test_archive_paths_outside_the_folder_are_refused(name):
    assert safe_member_name(name) is None


def test_a_missing_or_empty_folder_packs_to_nothing(tmp_path):
    assert pack_folder(tmp_path / "absent", 1024) is None
    assert pack_folder(Path(tmp_path), 1024) is None


def test_codex_reads_what_a_restored_thread_had_used_from_its_rollout(standins, tmp_path):
    day = tmp_path / "2026" / "12" / "01"
    day.mkdir(parents=True)
    counted = {"type": "event_msg", "payload": {"type": "token_count", "info": {"total_token_usage": {
        "input_tokens": 2000, "cached_input_tokens": 500, "output_tokens": 200}}}}
    rollout = day / "rollout-2026-12-01T21-17-27-01a2.jsonl"
    rollout.write_text('{"type":"session_meta"}\n' + json.dumps(counted) + "\n")
    adapter = get_adapter("codex")
    adapter.build_command(RunSpec(prompt="go", workdir=tmp_path, model="gpt-5"))

    used = adapter.session_usage(tmp_path)

    assert (used.input_tokens, used.cached_input_tokens, used.output_tokens) == (2000, 500, 200)
    assert str(used.cost_usd) == "0.0039375"  # 1500 × $1.25 + 500 × $0.125 + 200 × $10 per million


@pytest.mark.parametrize("harness", ["claude-code", "aider"])
def test_a_cli_that_counts_each_run_on_its_own_has_no_session_usage(harness, tmp_path):
    assert get_adapter(harness).session_usage(tmp_path) is None


# A CLI writing its session store as opencode does (WAL, checkpoints as it goes): each commit adds
# a message and moves the session's counter to the number of messages, so a copy that mixes two
# moments shows a counter that disagrees with the rows. ``pause`` is its idle time between turns.
SESSION_WRITER = """
import random, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS message (id INTEGER PRIMARY KEY, body TEXT)")
db.execute("CREATE TABLE IF NOT EXISTS session (id INTEGER PRIMARY KEY, messages INTEGER)")
db.execute("INSERT OR IGNORE INTO session VALUES (1, 0)")
print("ready", flush=True)
pause, n = float(sys.argv[2]), 0
while True:
    db.execute("BEGIN")
    db.execute("INSERT INTO message (body) VALUES (?)", (random.randbytes(3000).hex(),))
    db.execute("UPDATE session SET messages = (SELECT count(*) FROM message)")
    db.execute("COMMIT")
    n += 1
    if n % 7 == 0:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if pause and n % 5 == 0:
        time.sleep(pause)
"""


@contextlib.contextmanager
def session_store_being_written(folder: Path, pause: float):
    folder.mkdir(parents=True, exist_ok=True)
    writer = subprocess.Popen([sys.executable, "-c", SESSION_WRITER, str(folder / "opencode.db"), str(pause)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        yield
    finally:
        writer.kill()
        writer.wait()


def test_a_session_database_written_while_it_is_captured_is_stored_as_one_consistent_snapshot(tmp_path):
    folder = tmp_path / "opencode"
    snapshots = []
    with session_store_being_written(folder, pause=0.15):
        for _ in range(12):
            with contextlib.suppress(SessionUnsettled):
                snapshots.append(pack_folder(folder, 64 << 20, databases=("opencode.db",)))
            time.sleep(0.05)

    assert snapshots, "no quiet moment in 12 captures of a writer that pauses every 5 commits"
    for n, packed in enumerate(snapshots):
        out = tmp_path / f"out-{n}"
        assert unpack_folder(packed.data, out) == ["opencode.db"]  # the WAL folded in, no side files
        db = sqlite3.connect(out / "opencode.db")
        counted, recorded_count = db.execute("SELECT (SELECT count(*) FROM message), messages FROM session").fetchone()
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",) and counted == recorded_count > 0
        db.close()


def test_a_session_database_written_through_every_read_is_not_stored(tmp_path, monkeypatch):
    folder = tmp_path / "opencode"
    folder.mkdir()
    db = sqlite3.connect(folder / "opencode.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE message (body TEXT)")
    # A CLI that commits between every two reads, whatever the machine's load: the capture's pauses
    # between its reads are where this one writes (a writer process may sleep through them).
    monkeypatch.setattr(sessions, "time", types.SimpleNamespace(
        sleep=lambda _seconds: db.execute("INSERT INTO message VALUES (?)", ("another turn",))))

    with pytest.raises(SessionUnsettled):
        pack_folder(folder, 64 << 20, databases=("opencode.db",))
    db.close()
