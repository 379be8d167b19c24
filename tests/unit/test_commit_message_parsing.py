"""Commit messages are the agent's text: a message carrying the control characters a log format
could use as separators (\\x1e, \\x1f, \\x1c, form feed) neither hides a secret from the scan, nor
a subject from the commit convention, nor a commit from the report, nor crashes the review."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agileplus.review.governance import check_range
from agileplus.review.secret_scan import scan_messages
from harnesses.git import commits_since, git

SECRET = "AKIA" + "Q" * 16
SEPARATORS = ["\x1e", "\x1f", "\x1c", "\x0c", "\x1d"]


def commit(repo: Path, name: str, message: str) -> str:
    (repo / name).write_text(name)
    git("add", name, cwd=repo)
    subprocess.run(["git", "commit", "-q", "--cleanup=verbatim", "-F", "-"], input=message.encode(), cwd=repo,
                   check=True)
    return git("rev-parse", "HEAD", cwd=repo)


@pytest.fixture
def repo(tmp_path):
    git("init", "-q", "-b", "main", cwd=tmp_path)
    git("config", "user.name", "t", cwd=tmp_path)
    git("config", "user.email", "t@example.com", cwd=tmp_path)
    commit(tmp_path, "base.txt", "initial")
    return tmp_path


@pytest.mark.parametrize("separator", SEPARATORS)
def test_a_secret_after_a_separator_character_in_a_message_is_found(repo, separator):
    base = git("rev-parse", "HEAD", cwd=repo)
    sha = commit(repo, "a.txt", f"feat(WP01): harmless{separator}{SECRET}\n")

    assert [(found_sha, kind) for found_sha, kind, _text in scan_messages(repo, base, "HEAD")] == [
        (sha, "AWS access key id")]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_a_subject_with_a_separator_character_is_judged_whole(repo, separator):
    base = git("rev-parse", "HEAD", cwd=repo)
    sha = commit(repo, "a.txt", f"not conventional{separator}feat(WP01): looks fine\n")

    report = check_range(repo, base, "HEAD", constraints={"commit_convention": "feat({wp}): *"}, wp_code="WP01",
                         others={})

    assert [(v.rule, v.commit) for v in report.violations] == [("commit_message", sha)]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_every_commit_and_its_files_are_reported_whatever_its_message(repo, separator):
    base = git("rev-parse", "HEAD", cwd=repo)
    first = commit(repo, "a.txt", f"feat(WP01): one{separator}fake{separator}b.txt\n")
    second = commit(repo, "c.txt", "feat(WP01): two\n")

    assert [(c.sha, c.files) for c in commits_since(repo, base)] == [(first, ["a.txt"]), (second, ["c.txt"])]
