"""A bare Celery app on one of the zero-service brokers bench_broker.py compares
(BENCH_BROKER: ``filesystem`` = the project's hardened transport, workers/broker.py; ``sqlalchemy`` =
kombu's SQLAlchemy transport on a SQLite file), in BENCH_BROKER_DIR, with the project's delivery
settings (late acks, prefetch 1, events on).

Its one task appends the time it started to a file, so the bench reads send → start exactly."""

import os
import sys
import time
from pathlib import Path

from celery import Celery

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.broker import use_atomic_filesystem_transport  # noqa: E402

KIND = os.environ.get("BENCH_BROKER", "filesystem")
FOLDER = Path(os.environ.get("BENCH_BROKER_DIR", "/tmp/ap-bench-broker"))

if KIND == "filesystem":
    use_atomic_filesystem_transport()
    for sub in ("out", "processed", "control"):
        (FOLDER / sub).mkdir(parents=True, exist_ok=True)
    app = Celery("brokerbench", broker="filesystem://localhost//")
    app.conf.broker_transport_options = {
        "data_folder_in": str(FOLDER / "out"), "data_folder_out": str(FOLDER / "out"),
        "processed_folder": str(FOLDER / "processed"), "control_folder": str(FOLDER / "control"),
        "polling_interval": 0.05}
else:
    from kombu.transport import TRANSPORT_ALIASES
    from kombu.transport.sqlalchemy import Transport

    class PolledSQLAlchemy(Transport):
        # The same poll as the filesystem broker's (kombu's default is 1 s; this transport passes
        # its options to create_engine, so the interval is set here).
        polling_interval = 0.05

    TRANSPORT_ALIASES["sqla"] = "_broker_app:PolledSQLAlchemy"
    FOLDER.mkdir(parents=True, exist_ok=True)
    app = Celery("brokerbench", broker=f"sqla+sqlite:///{FOLDER / 'broker.sqlite3'}")
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, task_acks_late=True,
                task_reject_on_worker_lost=True, worker_hijack_root_logger=False,
                broker_channel_error_retry=True, worker_send_task_events=True, task_send_sent_event=True)


@app.task(name="bench.touch")
def touch(path: str, seconds: float = 0.0) -> None:
    with open(path, "a") as out:
        out.write(f"{time.time()!r}\n")
    time.sleep(seconds)
