"""Commit messages pass the secret scan: a message carrying a secret-shaped string, or any form of
a secret the farm holds, is a governance violation whose detail (which reaches the audit chain)
names the commit and a fingerprint of the message, never its text."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agileplus.review.governance import check_range, held_secret_violations

CONSTRAINTS = {"commit_convention": "feat({wp}): <description>"}


def repo_with_commit(root: Path, message: str) -> tuple[Path, str, str]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    (root / "README.md").write_text("target\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "initial")
    base = git("rev-parse", "HEAD")
    (root / "wp01").mkdir()
    (root / "wp01" / "file_1.txt").write_text("work\n")
    git("add", "-A")
    git("-c", "user.name=agent", "-c", "user.email=agent@localhost", "commit", "-qm", message)
    return root, base, git("rev-parse", "HEAD")


def secret_violations(tmp_path: Path, message: str):
    repo, base, head = repo_with_commit(tmp_path, message)
    report = check_range(repo, base, head, constraints=CONSTRAINTS, wp_code="WP01")
    return [v for v in report.violations if v.rule == "secret"], head


def test_a_commit_message_with_a_secret_shaped_string_is_a_violation(tmp_path):
    key = "AKIAIOSFODNN7EXAMPLE"

    found, head = secret_violations(tmp_path, f"feat(WP01): deploy with {key}")

    assert [(v.commit, "AWS access key id" in v.detail) for v in found] == [(head, True)]
    assert key not in found[0].detail and "sha256:" in found[0].detail


@pytest.mark.parametrize("form", ["plain", "reversed", "hex"])
def test_a_commit_message_with_a_secret_the_worker_holds_is_a_violation(tmp_path, monkeypatch, form):
    secret = "held-9c1f4e7a2b5d8"
    monkeypatch.setenv("AGILEPLUS_SECRET_DEPLOY", secret)
    shown = {"plain": secret, "reversed": secret[::-1], "hex": secret.encode().hex()}[form]

    found, head = secret_violations(tmp_path, f"feat(WP01): note {shown}")

    assert [v.commit for v in found] == [head] and "secret value held by the farm" in found[0].detail
    assert shown not in found[0].detail


def test_an_ordinary_commit_message_passes(tmp_path):
    found, _ = secret_violations(tmp_path, "feat(WP01): add the login form (refs #12)")

    assert found == []


def test_a_convention_violation_names_a_fingerprint_of_the_subject_not_the_subject(tmp_path):
    repo, base, head = repo_with_commit(tmp_path, "whatever the agent wrote here")

    report = check_range(repo, base, head, constraints=CONSTRAINTS, wp_code="WP01")

    [violation] = [v for v in report.violations if v.rule == "commit_message"]
    assert "whatever the agent wrote" not in violation.detail and "sha256:" in violation.detail


def test_a_held_secret_split_over_two_paragraphs_of_a_message_is_a_violation(tmp_path, monkeypatch):
    secret = "Qx7Lm9Pz4Rt8Wv1K"  # each half (8) shorter than a fragment
    monkeypatch.setenv("AGILEPLUS_SECRET_DEPLOY", secret)

    found, head = secret_violations(tmp_path, f"feat(WP01): work\n\n{secret[:8]}\n\n{secret[8:]}")

    assert [v.commit for v in found] == [head] and secret[:8] not in found[0].detail


def test_a_held_secret_split_over_lines_a_commit_adds_is_a_violation_and_is_withheld(tmp_path, monkeypatch):
    secret = "Qx7Lm9Pz4Rt8Wv1K"
    monkeypatch.setenv("AGILEPLUS_SECRET_DEPLOY", secret)
    repo, base, head = repo_with_commit(tmp_path, "feat(WP01): work")
    (repo / "wp01" / "notes.txt").write_text(f"the key:\n{secret[:8]}\n{secret[8:]}\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@localhost", "commit", "-qm",
                    "feat(WP01): notes"], check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()

    report = check_range(repo, base, head, constraints=CONSTRAINTS, wp_code="WP01")

    assert [v.path for v in report.violations if v.rule == "secret"] == ["wp01/notes.txt"]
    assert [v.path for v in held_secret_violations(repo, base, head)] == ["wp01/notes.txt"]
