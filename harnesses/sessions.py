"""An agent CLI's session folder as one compressed archive, and back: what a worker stores in
the database while the agent runs, and what another worker restores into its sandbox's HOME.

The folder is the agent's to write (it is bound into its sandbox), so it is read as hostile:
only regular files are taken (no symlink is followed, no device or FIFO is opened), each opened
with ``O_NOFOLLOW``; the archive is refused past a size cap rather than truncated (half a
transcript cannot be resumed). Restoring writes only regular files at relative paths with no
``..``, into a folder the worker just made.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harnesses.base import HarnessError


class SessionTooLarge(HarnessError):
    """The session folder's archive is over the cap: it is not stored (the id still is)."""


@dataclass
class PackedSession:
    data: bytes  # tar, gzip-compressed
    files: int
    raw_bytes: int


def _regular_files(folder: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
        for name in sorted(names):
            path = Path(root) / name
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(path).st_mode):
                    found.append((path.relative_to(folder).as_posix(), path))
    return found


def _read(path: Path, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit + 1)


def pack_folder(folder: Path, max_bytes: int) -> PackedSession | None:
    """The folder's regular files as a gzip'd tar (None when there are none). Raises
    ``SessionTooLarge`` when the files or the archive exceed ``max_bytes``."""
    if not folder.is_dir() or folder.is_symlink():
        return None
    files = _regular_files(folder)
    if not files:
        return None
    buffer, total = io.BytesIO(), 0
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in files:
            try:
                content = _read(path, max_bytes - total)
            except OSError:
                continue  # gone or replaced by a symlink since the walk
            total += len(content)
            if total > max_bytes:
                raise SessionTooLarge(f"the session files exceed {max_bytes} bytes")
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))
    data = gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)
    if len(data) > max_bytes:
        raise SessionTooLarge(f"the compressed session files exceed {max_bytes} bytes")
    return PackedSession(data, len(files), total)


def safe_member_name(name: str) -> str | None:
    """A relative path with no ``..`` or empty part, or None."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(part in ("..", "", ".") for part in path.parts):
        return None
    return path.as_posix()


def unpack_folder(data: bytes, folder: Path) -> list[str]:
    """Write the archive's regular files under ``folder`` (made if missing); anything else in it
    (links, devices, absolute or ``..`` paths) is skipped. Returns the names written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tar:
        for member in tar:
            name = safe_member_name(member.name)
            if name is None or not member.isreg():
                continue
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            target.write_bytes(source.read() if source else b"")
            written.append(name)
    return written


def member_texts(data: bytes, limit: int = 1 << 20) -> dict[str, str]:
    """Each file of the archive as text (its first ``limit`` bytes): for a redacted display."""
    texts: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tar:
        for member in tar:
            source = tar.extractfile(member) if member.isreg() else None
            if source is not None:
                texts[member.name] = source.read(limit).decode("utf-8", errors="replace")
    return texts
