"""kombu's filesystem transport, hardened for N processes sharing one folder.

Exchange tables: the stock ``_queue_bind`` checks ``exists()``, then opens the file with ``"wb"``
(truncating it) and only then locks it: a worker starting beside another reads the empty file in
between and dies with ``JSONDecodeError``. Here every change to a table is a read-modify-write
under an exclusive lock on a sidecar lock file, and the new table replaces the old one.

Messages: the stock ``_put`` opens the message's final name and only then locks and writes it,
while ``_get`` renames it into the processed folder and reads it without the lock, so a message
read while it is being written is empty, ``loads`` raises, and the worker's consumer loop dies
("Unrecoverable error"). Here a message is written under a temporary name the readers' match
skips (``.<name>.tmp``), synced, and renamed into place: a reader sees it whole or not at all.

Whatever a reader still cannot use (an empty, corrupt or foreign file, a table that is not JSON)
is moved to the quarantine folder beside the queue folder, with a warning and a count
(``QUARANTINED``), and the reader goes on to the next message. Any other error in ``_get`` is
logged and retried with a growing pause; a failed ``_put`` is retried, then raised as a
``ChannelError`` (the worker's consumer restarts on those: ``broker_channel_error_retry``).
Nothing in this module ends a worker's consumer loop. ``inspect_folder`` is the check
``agileplus doctor`` and every worker's start run over the folders.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import logging
import os
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from queue import Empty

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.transport.filesystem import exchange_queue_t
from kombu.utils.json import dumps, loads

log = logging.getLogger("agileplus.broker")

#: What this process quarantined, by reason ("empty", "not JSON", …).
QUARANTINED: Counter[str] = Counter()
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"
#: A temporary file older than this belongs to a writer that died mid-write.
STALE_TEMP_SECONDS = 300
PUT_ATTEMPTS = 4
GET_BACKOFF_MAX = 5.0


def write_atomically(file: Path, data: bytes) -> None:
    """``file`` appears with all of ``data`` or not at all (temporary name, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=TEMP_PREFIX + file.name + ".", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def quarantine(file: Path, folder: Path, reason: str) -> Path | None:
    """Move ``file`` out of the broker's way into ``folder``; None if another process took it first."""
    if not file.exists():
        return None  # another process took it first
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{time.time_ns()}-{file.name}"
    try:
        os.replace(file, target)
    except FileNotFoundError:
        return None
    QUARANTINED[reason] += 1
    log.warning("broker: quarantined %s (%s) as %s; %d file(s) quarantined by this process",
                file, reason, target, sum(QUARANTINED.values()))
    return target


def message_problem(data: bytes) -> tuple[dict | None, str]:
    """The message in ``data`` and "", or None and why it is not a kombu message."""
    if not data:
        return None, "empty"
    try:
        payload = loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None, "not JSON (half-written or foreign)"
    properties = payload.get("properties") if isinstance(payload, dict) else None
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        return None, "JSON but not a kombu message"
    if properties.get("body_encoding") == "base64":
        try:
            base64.b64decode(payload.get("body") or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            return None, "a kombu message whose body is not base64"
    return payload, ""


def read_table(file: Path, quarantine_folder: Path | None = None) -> list[exchange_queue_t]:
    try:
        text = file.read_text()
    except FileNotFoundError:
        return []
    try:
        rows = json.loads(text) if text else []
        return [exchange_queue_t(*row) for row in rows]
    except (ValueError, TypeError):
        if quarantine_folder is not None:
            quarantine(file, quarantine_folder, "exchange table is not a JSON list of bindings")
        return []


def write_table(file: Path, queues: list[exchange_queue_t]) -> None:
    # A temporary file renamed over the table: a worker reading it never sees half a table.
    write_atomically(file, json.dumps([list(q) for q in queues]).encode())


@contextmanager
def table_lock(file: Path):
    with open(file.with_name(file.name + ".lock"), "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def message_name(queue: str) -> str:
    """kombu's name: ``<ms>_<uuid>.<queue>.msg`` (readers match the part after the first dot)."""
    return f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"


def matches(name: str, queue: str) -> bool:
    return name.partition(".")[2] == f"{queue}.msg"


def read_locked(file: Path) -> bytes:
    """The bytes of ``file``, read under a shared lock (a stock kombu writer holds its exclusive one)."""
    with open(file, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        return f.read()


def channel_errors(method):
    """An OSError (a folder gone, a permission, a full disk) leaves as kombu's ChannelError: the
    worker's consumer restarts on those, with a pause, instead of ending (broker_channel_error_retry)."""
    @wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            raise ChannelError(f"embedded broker: {method.__name__} failed: {exc}") from exc
    return wrapper


class Channel(filesystem.Channel):
    _get_failures = 0
    _get_retry_at = 0.0

    @property
    def queue_folder(self) -> Path:
        return Path(self.data_folder_in)

    @property
    def taken_folder(self) -> Path:
        """Where a reader renames a message to own it: the processed folder, on the same filesystem."""
        return Path(self.transport_options.get("processed_folder") or self.queue_folder.parent / "processed")

    @property
    def quarantine_folder(self) -> Path:
        return Path(self.transport_options.get("quarantine_folder") or self.queue_folder.parent / "quarantine")

    @channel_errors
    def get_table(self, exchange):
        return read_table(self._exchange_file(exchange), self.quarantine_folder)

    @channel_errors
    def _queue_bind(self, exchange, routing_key, pattern, queue):
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        binding = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with table_lock(file):
            queues = read_table(file, self.quarantine_folder)
            if binding not in queues:
                write_table(file, [binding, *queues])

    @channel_errors
    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        file = self._exchange_file(exchange)
        binding = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        if not file.exists():
            return
        with table_lock(file):
            queues = read_table(file, self.quarantine_folder)
            if binding in queues:
                queues.remove(binding)
                write_table(file, queues)

    @channel_errors
    def _purge(self, queue):
        return super()._purge(queue)

    @channel_errors
    def _size(self, queue):
        return super()._size(queue)

    def _put(self, queue, payload, **kwargs):
        """Write the message whole under a temporary name, then rename it into the queue folder."""
        data = dumps(payload).encode()
        for attempt in range(1, PUT_ATTEMPTS + 1):
            file = Path(self.data_folder_out) / message_name(queue)
            try:
                write_atomically(file, data)
                return
            except OSError as exc:
                if attempt == PUT_ATTEMPTS:
                    raise ChannelError(f"cannot add a message to {file.parent}: {exc}") from exc
                log.warning("broker: writing a message to %s failed (%s); retry %d of %d",
                            file.parent, exc, attempt, PUT_ATTEMPTS - 1)
                time.sleep(0.05 * 2 ** attempt)

    def _get(self, queue):
        """The next whole message of ``queue``; Empty when there is none, or while a broker error
        is being retried (logged, with a pause that doubles up to GET_BACKOFF_MAX seconds)."""
        if time.monotonic() < self._get_retry_at:
            raise Empty()
        try:
            payload = self._take_next(queue)
        except Empty:
            self._get_failures = 0
            raise
        except Exception as exc:  # noqa: BLE001 - no broker error may end the consumer loop
            self._get_failures += 1
            pause = min(GET_BACKOFF_MAX, 0.1 * 2 ** self._get_failures)
            self._get_retry_at = time.monotonic() + pause
            log.warning("broker: reading queue %s failed (%r); retrying in %.1f s (failure %d in a row)",
                        queue, exc, pause, self._get_failures)
            raise Empty() from exc
        self._get_failures = 0
        return payload

    def _take(self, name: str) -> Path | None:
        """Own the message ``name``: one rename on one filesystem, so exactly one reader wins it."""
        source, taken = self.queue_folder / name, self.taken_folder / name
        try:
            os.rename(source, taken)
        except FileNotFoundError:
            if not source.exists():
                return None  # another reader won it
            taken.parent.mkdir(parents=True, exist_ok=True)  # the processed folder was missing
            os.rename(source, taken)
        return taken

    def _take_next(self, queue: str) -> dict:
        for name in sorted(os.listdir(self.queue_folder)):
            if not matches(name, queue):
                continue
            taken = self._take(name)
            if taken is None:
                continue
            try:
                payload, problem = message_problem(read_locked(taken))
            except OSError as exc:
                payload, problem = None, f"unreadable: {exc.strerror}"
            if payload is None:
                quarantine(taken, self.quarantine_folder, problem)
                continue
            if not self.store_processed:
                taken.unlink(missing_ok=True)
            return payload
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel


def use_atomic_filesystem_transport() -> None:
    """``filesystem://`` URLs get this transport in every process that imports the Celery app."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES["filesystem"] = "workers.broker:Transport"


# --- the folder check (agileplus doctor, a worker's start) ---------------------------------------


@dataclass
class FolderReport:
    folder: str
    queued: Counter = field(default_factory=Counter)  # queue name → messages waiting
    quarantined_now: list[dict] = field(default_factory=list)  # what this check moved away, and why
    quarantine: list[dict] = field(default_factory=list)  # everything in the quarantine folder

    def as_dict(self) -> dict:
        return {"folder": self.folder, "queued": dict(self.queued), "quarantined_now": self.quarantined_now,
                "quarantine": self.quarantine}


def _queue_of(name: str) -> str | None:
    """The queue a message file is for, or None for a name kombu never writes."""
    stem, dot, rest = name.partition(".")
    ms, _, ident = stem.partition("_")
    if not (dot and rest.endswith(".msg") and ms.isdigit() and len(ident) == 36):
        return None
    return rest[: -len(".msg")] or None


def _check_file(file: Path, now: float) -> str:
    """Why ``file`` in the queue folder must go to quarantine, or "" if it is a message or in flight."""
    name = file.name
    if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
        return "temporary file of a writer that died" if now - file.stat().st_mtime > STALE_TEMP_SECONDS else ""
    if not file.is_file():
        return "foreign: not a regular file"
    if _queue_of(name) is None:
        return "foreign: not a message name"
    try:
        return message_problem(read_locked(file))[1]
    except FileNotFoundError:
        raise  # a reader took it meanwhile: nothing to say about it
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def inspect_folder(broker_dir: Path) -> FolderReport:
    """Count the waiting messages of the embedded broker in ``broker_dir`` and move every file that
    is not one (empty, corrupt, foreign, a dead writer's leftover, a table that is not JSON) to
    ``broker_dir/quarantine``. Safe while workers run: a reader that took a file first wins it."""
    report = FolderReport(str(broker_dir))
    folder, jail, now = broker_dir / "out", broker_dir / "quarantine", time.time()
    for file in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            problem = _check_file(file, now)
        except FileNotFoundError:
            continue  # a reader took it meanwhile
        if problem and quarantine(file, jail, problem):
            report.quarantined_now.append({"file": file.name, "reason": problem})
        elif not problem and not file.name.startswith(TEMP_PREFIX):
            report.queued[_queue_of(file.name)] += 1
    for table in sorted((broker_dir / "control").glob("*.exchange")):
        before = sum(QUARANTINED.values())
        read_table(table, jail)
        if sum(QUARANTINED.values()) > before:
            report.quarantined_now.append({"file": f"control/{table.name}", "reason": "exchange table is not JSON"})
    report.quarantine = [{"file": f.name, "bytes": f.stat().st_size} for f in sorted(jail.iterdir())
                         if f.is_file()] if jail.is_dir() else []
    return report
