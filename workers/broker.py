"""kombu's filesystem transport with exchange tables that N processes can bind at once.

The stock ``_queue_bind`` checks ``exists()``, then opens the file with ``"wb"`` (truncating it)
and only then locks it: a worker starting beside another reads the empty file in between and
dies with ``JSONDecodeError`` (or truncates a table the other just wrote). Here every change to a
table is a read-modify-write under an exclusive lock on a sidecar lock file, and the new table
replaces the old one with ``os.replace``, so a reader sees the old table or the new one, never
half of one.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from kombu.transport import filesystem, virtual
from kombu.transport.filesystem import exchange_queue_t


def read_table(file: Path) -> list[exchange_queue_t]:
    try:
        text = file.read_text()
    except FileNotFoundError:
        return []
    return [exchange_queue_t(*row) for row in json.loads(text)] if text else []


def write_table(file: Path, queues: list[exchange_queue_t]) -> None:
    # A temporary file renamed over the table: a worker reading it never sees half a table.
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump([list(q) for q in queues], out)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def table_lock(file: Path):
    with open(file.with_name(file.name + ".lock"), "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


class Channel(filesystem.Channel):
    def get_table(self, exchange):
        return read_table(self._exchange_file(exchange))

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        binding = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with table_lock(file):
            queues = read_table(file)
            if binding not in queues:
                write_table(file, [binding, *queues])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        file = self._exchange_file(exchange)
        binding = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        if not file.exists():
            return
        with table_lock(file):
            queues = read_table(file)
            if binding in queues:
                queues.remove(binding)
                write_table(file, queues)


class Transport(filesystem.Transport):
    Channel = Channel


def use_atomic_filesystem_transport() -> None:
    """``filesystem://`` URLs get this transport in every process that imports the Celery app."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES["filesystem"] = "workers.broker:Transport"
