"""Bad files in the embedded broker's folders (workers/broker.py): an empty, corrupt or foreign
file is moved to the quarantine folder with a warning and a count, never raised to the consumer,
and never holds up the messages behind it."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from queue import Empty

import pytest
from kombu import Connection
from kombu.exceptions import ChannelError

from tests.support.cli import run_cli
from workers import broker
from workers.broker import inspect_folder, message_name


@pytest.fixture
def folder(tmp_path):
    for sub in ("out", "processed", "control"):
        (tmp_path / sub).mkdir()
    return tmp_path


@pytest.fixture
def queue_name(tmp_path) -> str:
    # kombu keeps one routing table per process for every filesystem folder: a queue name of its own
    # per test, or a binding declared in another test's folder would be taken as made here.
    return f"jobs-{uuid.uuid4().hex[:8]}"


def connect(folder) -> Connection:
    options = {"data_folder_in": str(folder / "out"), "data_folder_out": str(folder / "out"),
               "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control")}
    return Connection(transport="workers.broker:Transport", transport_options=options)


def drop(folder, content: bytes, name: str) -> str:
    """A file named ``name`` in the queue folder."""
    (folder / "out" / name).write_bytes(content)
    return name


@pytest.mark.parametrize("content", [b"", b'{"body": "half-writ', b"\xff\xfe not text", b'["a", "list"]',
                                     b'{"body": "no properties"}',
                                     b'{"body": "!!", "properties": {"delivery_tag": "t", "body_encoding": "base64"}}'],
                         ids=["empty", "half-written", "binary", "foreign JSON", "not a kombu message", "bad body"])
def test_a_bad_message_file_is_quarantined_and_the_next_message_is_delivered(folder, content, queue_name, caplog):
    bad = drop(folder, content, message_name(queue_name))
    before = sum(broker.QUARANTINED.values())
    with connect(folder) as conn, caplog.at_level(logging.WARNING, "agileplus.broker"):
        queue = conn.SimpleQueue(queue_name)
        queue.put({"job": "after the bad file"})
        message = queue.get(timeout=2)

    assert message.payload == {"job": "after the bad file"}
    assert [f.name.split("-", 1)[1] for f in (folder / "quarantine").iterdir()] == [bad]
    assert sum(broker.QUARANTINED.values()) == before + 1
    assert "quarantined" in caplog.text and bad in caplog.text


def test_a_message_is_written_under_a_name_readers_skip_until_it_is_whole(folder, queue_name, monkeypatch):
    seen_while_writing = []
    real_replace = os.replace

    def look_then_replace(src, dst):
        seen_while_writing.extend(os.listdir(folder / "out"))
        real_replace(src, dst)

    monkeypatch.setattr(broker.os, "replace", look_then_replace)
    with connect(folder) as conn:
        conn.SimpleQueue(queue_name).put({"n": 1})

    assert len(seen_while_writing) == 1
    assert seen_while_writing[0].startswith(".") and seen_while_writing[0].endswith(".tmp")
    assert not broker.matches(seen_while_writing[0], queue_name)


def test_an_unreadable_queue_folder_is_retried_with_a_growing_pause_not_raised(folder, queue_name, caplog):
    with connect(folder) as conn, caplog.at_level(logging.WARNING, "agileplus.broker"):
        queue = conn.SimpleQueue(queue_name)
        (folder / "out").rename(folder / "gone")
        with pytest.raises(Empty):
            queue.get(timeout=0.5)
        (folder / "gone").rename(folder / "out")
        queue.put({"n": 1})
        deadline = time.monotonic() + 10
        message = None
        while message is None and time.monotonic() < deadline:
            try:
                message = queue.get(timeout=1)
            except Empty:
                continue

    assert message is not None and message.payload == {"n": 1}
    assert f"reading queue {queue_name} failed" in caplog.text and "retrying in" in caplog.text


def test_a_message_that_cannot_be_written_raises_a_channel_error_after_retries(folder, queue_name, caplog):
    with connect(folder) as conn, caplog.at_level(logging.WARNING, "agileplus.broker"):
        queue = conn.SimpleQueue(queue_name)
        (folder / "out").rename(folder / "gone")
        with pytest.raises(ChannelError, match="cannot add a message"):
            queue.put({"n": 1})

    assert caplog.text.count("writing a message to") == broker.PUT_ATTEMPTS - 1


def test_a_corrupt_exchange_table_is_quarantined_and_binding_still_works(folder, queue_name):
    from kombu import Exchange, Queue

    (folder / "control" / "fan.exchange").write_text('[["", "", "q1"], ["trunc')
    with connect(folder) as conn:
        Queue(queue_name, Exchange("fan", type="fanout"), channel=conn.channel()).declare()

    assert broker.read_table(folder / "control" / "fan.exchange") == [("", "", queue_name)]
    assert len(list((folder / "quarantine").iterdir())) == 1


def test_the_folder_check_quarantines_foreign_corrupt_and_dead_writers_files_and_counts_the_rest(folder, queue_name):
    good = message_name(queue_name)
    with connect(folder) as conn:
        conn.SimpleQueue(queue_name).put({"n": 1})
    drop(folder, b"notes", name="README.txt")
    drop(folder, b"{not json", message_name(queue_name))
    dead_writer = drop(folder, b'{"body": "x', name=f".{message_name(queue_name)}.abc.tmp")
    old = time.time() - broker.STALE_TEMP_SECONDS - 1
    os.utime(folder / "out" / dead_writer, (old, old))
    live_writer = drop(folder, b'{"body": "y', name=f".{good}.def.tmp")

    report = inspect_folder(folder)

    reasons = {item["file"]: item["reason"] for item in report.quarantined_now}
    assert reasons["README.txt"] == "foreign: not a message name"
    assert reasons[dead_writer] == "temporary file of a writer that died"
    assert "not JSON" in next(r for f, r in reasons.items() if f.endswith(f".{queue_name}.msg"))
    assert report.queued == {queue_name: 1}
    assert len(report.quarantine) == 3
    assert sorted(os.listdir(folder / "out"))[0] == live_writer  # a write in progress is left alone


def test_doctor_quarantines_a_corrupt_broker_file_names_it_and_exits_1(folder, queue_name, settings):
    settings.BROKER_DIR = folder
    bad = drop(folder, b'{"body": "half', message_name(queue_name))

    result = run_cli("doctor")

    assert result.exit_code == 1
    assert f"broker file {bad} quarantined (not JSON" in result.output
    assert "quarantined now: 1; in quarantine: 1" in result.output
    assert not (folder / "out" / bad).exists()


def test_doctor_on_a_healthy_broker_folder_counts_the_waiting_messages_and_exits_0(folder, queue_name, settings):
    settings.BROKER_DIR = folder
    with connect(folder) as conn:
        conn.SimpleQueue(queue_name).put({"n": 1})

    result = run_cli("doctor --json")

    assert result.exit_code == 0
    assert json.loads(result.output)["broker"]["queued"] == {queue_name: 1}


def test_a_broken_control_folder_is_a_channel_error_the_consumer_restarts_on(folder, queue_name):
    from kombu import Exchange, Queue

    (folder / "control").rmdir()
    (folder / "control").write_text("a file where the control folder should be")
    with connect(folder) as conn, pytest.raises(ChannelError, match="_queue_bind failed"):
        Queue(queue_name, Exchange(f"x-{queue_name}", type="fanout"), channel=conn.channel()).declare()


def test_a_missing_processed_folder_is_made_again_and_the_message_delivered(folder, queue_name):
    with connect(folder) as conn:
        queue = conn.SimpleQueue(queue_name)
        queue.put({"n": 1})
        (folder / "processed").rmdir()
        message = queue.get(timeout=2)

    assert message.payload == {"n": 1}
    assert (folder / "processed").is_dir()
