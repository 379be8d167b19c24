"""Processes for the embedded broker's race tests: ``python -m tests.faults.broker_race ROLE …``.

``writer FOLDER TRANSPORT NAME COUNT SIZE``: puts COUNT messages of SIZE bytes on queue ``race``.
``reader FOLDER TRANSPORT DONE_FILE``: takes messages until DONE_FILE exists and the queue has
been empty for a second; prints one JSON line: the ids it read and the errors ``get`` raised.
``producer FEATURE_SLUG WP…``: a farm's producer (Django, the project's broker settings): queues a
job for each WP, then rings every job of the feature again (duplicate deliveries) a few times.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from queue import Empty

from kombu import Connection

TRANSPORTS = {"stock": "kombu.transport.filesystem:Transport", "ours": "workers.broker:Transport"}


def connection(folder: str, transport: str) -> Connection:
    options = {"data_folder_in": f"{folder}/out", "data_folder_out": f"{folder}/out",
               "processed_folder": f"{folder}/processed", "control_folder": f"{folder}/control",
               "quarantine_folder": f"{folder}/quarantine", "store_processed": False}
    return Connection(transport=TRANSPORTS[transport], transport_options=options)


def write(folder: str, transport: str, name: str, count: int, size: int) -> None:
    with connection(folder, transport) as conn:
        queue = conn.SimpleQueue("race")
        for n in range(count):
            queue.put({"id": f"{name}-{n}", "pad": "x" * size})


def read(folder: str, transport: str, done_file: str) -> None:
    ids, errors = [], []
    idle_since = None
    with connection(folder, transport) as conn:
        queue = conn.SimpleQueue("race")
        while True:
            try:
                message = queue.get(timeout=0.2)
            except Empty:
                idle_since = idle_since or time.monotonic()
                if Path(done_file).exists() and time.monotonic() - idle_since > 1:
                    break
                continue
            except Exception as exc:  # noqa: BLE001 - counted: this is what kills a stock worker
                errors.append(repr(exc)[:200])
                continue
            idle_since = None
            ids.append(message.payload["id"])
            message.ack()
    print(json.dumps({"ids": ids, "errors": errors}))


def produce(slug: str, *codes: str) -> None:
    import django

    django.setup()
    from agileplus.dispatch.models import DispatchJob
    from agileplus.dispatch.services import enqueue_job, send_doorbell
    from agileplus.features.models import WorkPackage

    for code in codes:
        enqueue_job(WorkPackage.objects.get(feature__slug=slug, code=code), actor="human:producer")
    for _ in range(3):
        for job in DispatchJob.objects.filter(feature__slug=slug):
            send_doorbell(job)  # a doorbell for a job already claimed or done: its claim fails, harmlessly
        time.sleep(2)


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "producer":
        produce(*args)
    elif role == "writer":
        write(args[0], args[1], args[2], int(args[3]), int(args[4]))
    else:
        read(*args)
