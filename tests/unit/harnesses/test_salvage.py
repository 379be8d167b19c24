"""Salvage keeps the agent's uncommitted work, not the CLI's own scratch files (a real git)."""

from __future__ import annotations

from pathlib import Path

from harnesses import git as g
from harnesses.registry import get_adapter

REF = "refs/agileplus/salvage/job_1"


def repository_with_leftovers(tmp_path: Path, *leftovers: str) -> Path:
    repo = g.init_one_commit_repo(tmp_path / "repo", name="t", email="t@example.com", readme="hi\n")
    for name in leftovers:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("left behind\n")
    return repo


def test_the_clis_scratch_files_are_left_out_of_the_salvaged_work(tmp_path):
    repo = repository_with_leftovers(tmp_path, "wip.txt", ".aider.tags.cache.v4/cache.db")

    g.salvage(repo / ".git", repo, "main", REF, leave_out=get_adapter("aider").scratch_paths)

    assert g.git("ls-tree", "-r", "--name-only", REF, cwd=repo).split() == ["README.md", "wip.txt"]


def test_nothing_but_scratch_files_is_nothing_to_salvage(tmp_path):
    repo = repository_with_leftovers(tmp_path, ".aider.tags.cache.v4/cache.db")

    assert g.salvage(repo / ".git", repo, "main", REF, leave_out=(".aider.tags.cache.v4",)) is None
