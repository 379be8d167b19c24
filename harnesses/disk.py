"""The disk an agent's job may use, capped for the whole job (``agent.limits.disk_mb``), not only
per file (RLIMIT_FSIZE).

The agent writes to two places: the private HOME and /tmp inside its sandbox, a tmpfs whose
``size=`` bwrap sets (memory, gone with the job), and its repository on the worker's disk, which
no mount option can cap for an unprivileged worker. The repository's growth is measured instead,
from the runner's tick (every half second) and once more when the agent ends; over the cap, the
run is stopped and the job fails saying so. Between two ticks an agent can write more than the
cap allows, bounded by its file-size limit (never above the cap) and its write speed.

Walking a large repository every tick would cost the worker: the filesystem's own use is read
first (one ``statvfs``), and the tree is walked only when that grew by more than the cap.
"""

from __future__ import annotations

import os
from pathlib import Path


def tree_bytes(root: Path) -> int:
    """Bytes allocated on disk to the files under ``root`` (each inode once; symlinks not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, files in os.walk(root):
        for name in files + dirs:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:  # gone meanwhile
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def filesystem_used(path: Path) -> int:
    info = os.statvfs(path)
    return (info.f_blocks - info.f_bfree) * info.f_frsize


class DiskCap:
    """How much ``root`` may grow during one job."""

    def __init__(self, root: Path, cap_bytes: int):
        self.root = root
        self.cap_bytes = cap_bytes
        self.start_tree = tree_bytes(root)
        self.start_filesystem = filesystem_used(root)

    def over(self) -> str | None:
        """The reason to stop the job when its repository grew past the cap, else None."""
        try:
            if filesystem_used(self.root) - self.start_filesystem <= self.cap_bytes:
                return None  # nothing on this filesystem grew that much, the repository included
            grown = tree_bytes(self.root) - self.start_tree
        except OSError:
            return None
        if grown <= self.cap_bytes:
            return None
        return (f"the agent's repository grew by {grown >> 20} MB, over the job's disk cap of "
                f"{self.cap_bytes >> 20} MB (agent.limits.disk_mb in .kittify/config.yaml)")
