"""A WP's worktree from the worker's local mirror (harnesses.git: fetch + `git worktree add`)
against a fresh `git clone` of the origin, on a repository of 10,000 files.
Usage: .venv/bin/python bench/bench_worktree.py [--quick]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import Figure, emit, is_quick, percentile  # noqa: E402

from harnesses import git as g  # noqa: E402

QUICK = is_quick()
FILES = 2_000 if QUICK else 10_000
RUNS = 3 if QUICK else 7


def make_origin(root: Path) -> Path:
    """One commit with FILES small files, written through fast-import (seconds, not minutes)."""
    origin = root / "origin"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    lines = ["commit refs/heads/main", "committer bench <bench@localhost> 1700000000 +0000", "data 7", "initial"]
    for i in range(FILES):
        body = f"module {i}\n" + "x = 1\n" * 20
        lines += [f"M 644 inline src/pkg{i // 100:03d}/mod_{i:05d}.py", f"data {len(body.encode())}", body]
    subprocess.run(["git", "fast-import", "--quiet"], input="\n".join(lines) + "\n", text=True, cwd=origin,
                   check=True)
    return origin


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="ap-bench-worktree-"))
    try:
        origin = make_origin(root)
        mirror = g.ensure_mirror(root / "worker", str(origin))
        ours, clones = [], []
        for i in range(RUNS):
            start = time.perf_counter()
            mirror = g.ensure_mirror(root / "worker", str(origin))  # the fetch every job does
            path, _base = g.create_worktree(mirror, root / "worker" / ".worktrees", f"wt-{i}", f"feat/b-{i}",
                                            g.origin_ref("main"))
            ours.append(time.perf_counter() - start)
            g.remove_worktree(mirror, path)
            start = time.perf_counter()
            subprocess.run(["git", "clone", "--quiet", str(origin), str(root / f"clone-{i}")], check=True)
            clones.append(time.perf_counter() - start)
            shutil.rmtree(root / f"clone-{i}")
        p50, c50 = percentile(ours, 50) * 1000, percentile(clones, 50) * 1000
        print(f"{FILES:,} files: worktree from mirror p50 {p50:.0f} ms, fresh clone p50 {c50:.0f} ms "
              f"({RUNS} runs each)")
        emit("worktree", [Figure(f"worktree from local mirror, {FILES:,} files (p50)", round(p50, 1), "ms",
                                 "git clone of the origin (p50)", round(c50, 1), "ms",
                                 note="with the mirror fetch each job does; a local-disk clone hardlinks objects, "
                                      "so a remote origin favours the mirror far more")])
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
