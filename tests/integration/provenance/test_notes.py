"""Notes on the origin written by several writers at once (jobs of one worker share its mirror;
workers share the origin): none is lost."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from agileplus.provenance.notes import TRACE_NOTES, write_notes


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, text=True).stdout


def origin_with_commits(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    for i in range(n):
        git(work, "-c", "user.name=a", "-c", "user.email=a@localhost", "commit", "-q", "--allow-empty", "-m", f"c{i}")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(origin))
    return origin, git(work, "rev-list", "--reverse", "main").split()


def test_writers_racing_on_one_mirror_and_on_two_clones_lose_no_note(tmp_path):
    origin, commits = origin_with_commits(tmp_path, 24)
    mirror, other = tmp_path / "mirror.git", tmp_path / "other.git"
    for clone in (mirror, other):
        git(tmp_path, "clone", "-q", "--bare", str(origin), str(clone))
    shares = [(mirror, commits[0:8]), (mirror, commits[8:16]), (other, commits[16:24])]
    threads = [threading.Thread(target=write_notes, args=(path, TRACE_NOTES, {c: f"note of {c}\n" for c in mine}))
               for path, mine in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    noted = git(origin, "notes", "--ref", TRACE_NOTES, "list").split()[1::2]
    assert sorted(noted) == sorted(commits)


def test_a_commit_noted_already_keeps_its_first_note(tmp_path):
    origin, commits = origin_with_commits(tmp_path, 2)
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--bare", str(origin), str(mirror))
    write_notes(mirror, TRACE_NOTES, {commits[0]: "first\n"})

    written = write_notes(mirror, TRACE_NOTES, {c: "again\n" for c in commits}, keep_existing=True)

    assert written == [commits[1]]
    assert git(origin, "notes", "--ref", TRACE_NOTES, "show", commits[0]) == "first\n"
