"""An agent CLI's session folder as one compressed archive, and back: what a worker stores in
the database while the agent runs, and what another worker restores into its sandbox's HOME.

The folder is the agent's to write (it is bound into its sandbox), so it is read as hostile:
only regular files are taken, walked through open folder fds (``openat`` with ``O_NOFOLLOW``:
no symlink is followed, not even one swapped in for a folder mid-walk; no device or FIFO is
read; what is refused is logged); the archive is refused past a size cap rather than truncated (half a
transcript cannot be resumed). Restoring writes only regular files at relative paths with no
``..``, into a folder the worker just made.

A SQLite database the CLI writes while it runs (opencode's session store, in WAL mode) is not
copied file by file: a copy taken mid-checkpoint mixes pages of two moments. Its files (database
and WAL) are read until two reads in a row agree, the copy is checked by SQLite, and folded
into one file with SQLite's backup; when no quiet moment comes, the capture is skipped and the
last stored one stays.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import sqlite3
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harnesses.base import HarnessError

log = logging.getLogger("agileplus.sessions")


class SessionTooLarge(HarnessError):
    """The session folder's archive is over the cap: it is not stored (the id still is)."""


class SessionUnsettled(HarnessError):
    """A session database was being written through every try: nothing is stored this time
    (the last stored session stays); the capture at the end of the run finds it quiet."""


# A database's side files: what they hold is folded into the snapshot of the database itself.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
SNAPSHOT_TRIES = 5


@dataclass
class PackedSession:
    data: bytes  # tar, gzip-compressed
    files: int
    raw_bytes: int
    refused: list[str] = field(default_factory=list)  # links, devices, entries swapped while read


# Opening a name inside a folder held open: never through a symlink, never a device's side effects.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FOLDER_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


def _regular_files(dir_fd: int, prefix: str, refused: list[str]) -> Iterator[tuple[str, int, str]]:
    """(relative name, fd of its folder, its name there) of each regular file under the folder
    open at ``dir_fd``, in name order. Each folder is opened inside its parent's fd with
    ``O_NOFOLLOW``: a folder swapped for a symlink (to anywhere) is refused, never entered.
    What is not a folder or a regular file is named in ``refused``."""
    with os.scandir(dir_fd) as scan:
        entries = sorted((entry.name, entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False))
                         for entry in scan)
    for name, is_dir, is_file in entries:
        if is_file:
            yield prefix + name, dir_fd, name
            continue
        if not is_dir:
            refused.append(prefix + name)
            continue
        try:
            fd = os.open(name, FOLDER_FLAGS, dir_fd=dir_fd)
        except OSError:  # swapped for a symlink or a file since the listing, or gone
            refused.append(prefix + name + "/")
            continue
        try:
            yield from _regular_files(fd, prefix + name + "/", refused)
        finally:
            os.close(fd)


def _read(name: str | Path, limit: int, dir_fd: int | None = None) -> bytes:
    """The first ``limit`` + 1 bytes of a regular file, opened without following a symlink.
    OSError when it is a symlink (ELOOP), gone, or not a regular file."""
    fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{name} is not a regular file")
        return handle.read(limit + 1)


def sqlite_snapshot(path: Path, limit: int, dir_fd: int | None = None) -> bytes:
    """One consistent file of the SQLite database at ``path`` (with what its WAL holds; a name
    inside the folder open at ``dir_fd`` when given), while its CLI may be writing it. Raises
    ``SessionUnsettled`` when no two reads in a row agree or SQLite finds the copy damaged;
    ``SessionTooLarge`` past ``limit``."""
    with tempfile.TemporaryDirectory(prefix="agileplus-session-db-") as scratch:
        copy, previous = Path(scratch) / "copy.db", None
        for attempt in range(SNAPSHOT_TRIES):
            current = _database_files(Path(path), limit, dir_fd)
            if current == previous and _write_copy(copy, current):
                return _folded(copy, Path(scratch) / "snapshot.db", limit)
            previous = current
            time.sleep(0.02 * (attempt + 1))
    raise SessionUnsettled(f"{path.name} was being written through {SNAPSHOT_TRIES} reads")


def _database_files(path: Path, limit: int, dir_fd: int | None = None) -> tuple[bytes, bytes]:
    """The database and its WAL as they are now (never through a symlink). OSError: the
    database is gone or is no longer a file."""
    database = _read(path, limit, dir_fd)
    try:
        log = _read(path.with_name(path.name + "-wal"), limit, dir_fd)
    except OSError:
        log = b""
    if len(database) + len(log) > limit:
        raise SessionTooLarge(f"{path.name} and its WAL exceed {limit} bytes")
    return database, log


def _write_copy(copy: Path, files: tuple[bytes, bytes]) -> bool:
    """Write the pair where only this worker reads it; True when SQLite opens it and finds it sound."""
    database, log = files
    for stale in (copy, *(copy.with_name(copy.name + side) for side in SQLITE_SIDE_FILES)):
        stale.unlink(missing_ok=True)
    copy.write_bytes(database)
    if log:
        copy.with_name(copy.name + "-wal").write_bytes(log)
    try:
        connection = sqlite3.connect(copy)
        try:
            connection.execute("PRAGMA trusted_schema = OFF")  # the agent wrote this schema
            return connection.execute("PRAGMA quick_check").fetchone() == ("ok",)
        finally:
            connection.close()
    except sqlite3.DatabaseError:
        return False


def _folded(copy: Path, snapshot: Path, limit: int) -> bytes:
    source, target = sqlite3.connect(copy), sqlite3.connect(snapshot)
    try:
        source.execute("PRAGMA trusted_schema = OFF")
        source.backup(target)
    finally:
        target.close()
        source.close()
    data = snapshot.read_bytes()
    if len(data) > limit:
        raise SessionTooLarge(f"the snapshot of {copy.name} exceeds {limit} bytes")
    return data


def pack_folder(folder: Path, max_bytes: int, databases: tuple[str, ...] = ()) -> PackedSession | None:
    """The folder's regular files as a gzip'd tar (None when there are none); ``databases``
    (relative names) are SQLite files taken as one consistent snapshot each, without their side
    files. The folder is walked through open folder fds (``openat`` with ``O_NOFOLLOW``): nothing
    outside it is read, whatever the agent swaps for a symlink meanwhile; what is refused is
    logged and listed. Raises ``SessionTooLarge`` when the files or the archive exceed
    ``max_bytes``, ``SessionUnsettled`` when a database gave no quiet moment."""
    try:
        root = os.open(folder, FOLDER_FLAGS)
    except OSError:
        return None  # missing, or a symlink
    side_files = {name + side for name in databases for side in SQLITE_SIDE_FILES}
    buffer, total, files, refused = io.BytesIO(), 0, 0, []
    try:
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, dir_fd, base in _regular_files(root, "", refused):
                if name in side_files:
                    continue
                try:
                    content = (sqlite_snapshot(Path(base), max_bytes - total, dir_fd) if name in databases
                               else _read(base, max_bytes - total, dir_fd))
                except OSError:
                    refused.append(name)  # gone, or swapped for a symlink or a device since the listing
                    continue
                total, files = total + len(content), files + 1
                if total > max_bytes:
                    raise SessionTooLarge(f"the session files exceed {max_bytes} bytes")
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(content), 0o600
                tar.addfile(info, io.BytesIO(content))
    finally:
        os.close(root)
    if refused:
        log.warning("session capture of %s refused %s (a symlink, a device or swapped while read)",
                    folder, ", ".join(refused[:20]))
    if not files:
        return None
    data = gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)
    if len(data) > max_bytes:
        raise SessionTooLarge(f"the compressed session files exceed {max_bytes} bytes")
    return PackedSession(data, files, total, refused)


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
