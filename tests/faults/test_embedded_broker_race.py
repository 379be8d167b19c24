"""Readers racing writers of 300 KB messages on the filesystem broker (issue 24): kombu's own
transport hands a reader half-written messages (its ``get`` raises ``JSONDecodeError``, which
ends a Celery worker's consumer loop); the project's transport (workers/broker.py) loses none."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.server import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WRITERS, READERS, MESSAGES, SIZE = 4, 2, 60, 300_000


def race(folder, transport: str) -> tuple[set[str], list[str], list[str]]:
    """Writers and readers at once; (ids written, ids read, errors the readers' ``get`` raised)."""
    for sub in ("out", "processed", "control"):
        (folder / sub).mkdir(parents=True)
    done = folder / "writers-done"
    module = [sys.executable, "-m", "tests.faults.broker_race"]
    readers = [subprocess.Popen([*module, "reader", str(folder), transport, str(done)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True) for _ in range(READERS)]
    writers = [subprocess.Popen([*module, "writer", str(folder), transport, f"w{i}", str(MESSAGES), str(SIZE)],
                                cwd=ROOT) for i in range(WRITERS)]
    assert all(w.wait(timeout=180) == 0 for w in writers)
    done.touch()
    reports = [json.loads(r.communicate(timeout=60)[0]) for r in readers]
    written = {f"w{i}-{n}" for i in range(WRITERS) for n in range(MESSAGES)}
    return written, [i for r in reports for i in r["ids"]], [e for r in reports for e in r["errors"]]


def test_kombus_own_transport_hands_readers_half_written_messages(tmp_path):
    # The reproduction is real (without it the test below would prove nothing); a race loses
    # 1-10 of 240 messages here, and fewer on a machine busy elsewhere (seen: none in three), so up
    # to ten races are run to see it; the first that shows it ends the loop.
    for attempt in range(10):
        written, read, errors = race(tmp_path / str(attempt), "stock")
        if errors:
            break

    assert any("JSONDecodeError" in e for e in errors)
    assert len(written - set(read)) >= len(errors)


def test_the_hardened_transport_delivers_every_message_whole_exactly_once(tmp_path):
    written, read, errors = race(tmp_path, "ours")

    assert errors == []
    assert sorted(read) == sorted(written)
    assert list(tmp_path.glob("quarantine/*")) == []
