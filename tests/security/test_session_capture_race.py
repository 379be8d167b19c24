"""Capturing an agent's session folder follows no link, even one swapped in mid-capture: a real
process swaps a folder of the store, and a file in it, for symlinks into a host folder whose
files (same names) hold a marker, in a loop, while the worker captures the store 300 times. The
marker is in no capture; the swaps caught mid-walk are refused entries, logged. The swapping
process runs as the test's user and, when the test runs as root, as an ordinary user owning
the store (as an agent's uid would)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harnesses.sessions import member_texts, pack_folder

MARKER = "HOST-FILE-MARKER-5f1c"
CAPTURES = 300
NOBODY = 65534

SWAPPER = r"""
import os, sys
store, host = sys.argv[1], sys.argv[2]
chats, hidden = os.path.join(store, "chats"), os.path.join(store, ".chats")
notes, kept = os.path.join(store, "notes.txt"), os.path.join(store, ".notes")
print("swapping", flush=True)
while True:
    os.rename(chats, hidden)
    os.symlink(host, chats)
    os.rename(notes, kept)
    os.symlink(os.path.join(host, "notes.txt"), notes)
    os.unlink(chats)
    os.rename(hidden, chats)
    os.unlink(notes)
    os.rename(kept, notes)
"""


def store_and_host(root: Path) -> tuple[Path, Path]:
    """A session store (40 transcripts in chats/, notes.txt) and a host folder with the same
    names, each holding the marker."""
    store, host = root / "store", root / "host"
    (store / "chats").mkdir(parents=True)
    host.mkdir()
    for i in range(40):
        (store / "chats" / f"s{i:02}.jsonl").write_text('{"type":"user"}\n')
        (host / f"s{i:02}.jsonl").write_text(MARKER)
    (store / "notes.txt").write_text("notes\n")
    (host / "notes.txt").write_text(MARKER)
    return store, host


def reachable_folder() -> Path:
    """A fresh folder every user can pass through (pytest's own are the test user's only)."""
    folder = Path(tempfile.mkdtemp(prefix="agileplus-capture-race-"))
    folder.chmod(0o755)
    return folder


def swapper(store: Path, host: Path, as_user: bool) -> subprocess.Popen:
    command = [sys.executable, "-c", SWAPPER, str(store), str(host)]
    if as_user:
        for path in (store, *store.rglob("*")):
            os.chown(path, NOBODY, NOBODY)
        command = [shutil.which("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "swapping"  # blocks until the loop starts (or it died)
    return process


@pytest.mark.parametrize("as_user", [False, True], ids=["swapped by the worker's user", "swapped by an ordinary user"])
def test_a_store_folder_swapped_for_a_symlink_during_capture_is_refused_never_read(caplog, as_user):
    if as_user and (os.geteuid() != 0 or not shutil.which("setpriv")):
        pytest.skip("needs root and setpriv to run the swapping process as another user")
    store, host = store_and_host(reachable_folder())
    caplog.set_level(logging.WARNING, logger="agileplus.sessions")
    process = swapper(store, host, as_user)
    captured, refused = [], []
    try:
        for _ in range(CAPTURES):
            packed = pack_folder(store, 1 << 24)
            if packed is not None:
                captured.append(packed)
                refused += packed.refused
    finally:
        process.kill()
        process.wait(timeout=10)
        shutil.rmtree(store.parent)

    leaked = [name for packed in captured for name, text in member_texts(packed.data).items() if MARKER in text]
    assert leaked == [] and len(captured) >= CAPTURES // 2
    assert refused, "the swapping process never caught a capture mid-walk: the race did not run"
    assert any("refused" in r.getMessage() for r in caplog.records)
