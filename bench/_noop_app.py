"""A bare Celery app with one no-op task: the baseline for AgilePlus's dispatch path.

The task writes the time it started to a file, so the bench measures send → start exactly as
it does for an agent job (enqueue → agent start)."""

import os
import time
from pathlib import Path

from celery import Celery

broker = os.environ.get("CELERY_BROKER_URL") or "filesystem://localhost//"
app = Celery("noop", broker=broker)
if broker.startswith("filesystem://"):
    folder = Path(os.environ["AGILEPLUS_BROKER_DIR"]) / "noop"
    for sub in ("out", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    app.conf.broker_transport_options = {"data_folder_in": str(folder / "out"), "data_folder_out": str(folder / "out"),
                                         "processed_folder": str(folder / "processed"),
                                         "control_folder": str(folder / "control"), "polling_interval": 0.05}
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, task_acks_late=True,
                worker_hijack_root_logger=False)


@app.task(name="noop.touch")
def touch(path: str) -> None:
    Path(path).write_text(repr(time.time()))
