"""The Celery app. The broker is a doorbell: messages carry only a job id; the
database holds the truth (claims, leases, fencing), so duplicate delivery is harmless.
"""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")

import django  # noqa: E402

django.setup()

from workers.broker import use_atomic_filesystem_transport  # noqa: E402

use_atomic_filesystem_transport()  # N workers starting at once on the embedded broker (workers/broker.py)

app = Celery("agileplus", include=["workers.tasks", "workers.review_tasks"])

import workers.lifecycle  # noqa: E402,F401 - worker heartbeat signals

# Longest agent run we allow (a WP timeout is enforced by the runner itself).
HARD_LIMIT = int(os.environ.get("AGILEPLUS_TASK_HARD_LIMIT", 6 * 3600))
SOFT_LIMIT = HARD_LIMIT - 60
# Redis re-delivers an unacked task after visibility_timeout: keep it above the hard limit.
VISIBILITY_TIMEOUT = HARD_LIMIT + 3600


def broker_options() -> dict:
    if settings.CELERY_EMBEDDED_BROKER:
        folder = settings.BROKER_DIR
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),  # remote control (Flower, inspect) works here too
            "store_processed": False,
            "polling_interval": 0.05,
        }
    return {"visibility_timeout": VISIBILITY_TIMEOUT, "polling_interval": 0.1}


app.conf.update(
    broker_url=settings.CELERY_BROKER_URL,
    broker_transport_options=broker_options(),
    result_backend=None,
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,  # the attempt cap lives in the database (max_attempts)
    worker_prefetch_multiplier=1,
    task_soft_time_limit=SOFT_LIMIT,
    task_time_limit=HARD_LIMIT,
    worker_send_task_events=True,
    task_send_sent_event=True,
    task_default_queue="agileplus",
    task_routes={"review.*": {"queue": "agileplus"}, "farm.*": {"queue": "agileplus"}},
    task_always_eager=settings.CELERY_TASK_ALWAYS_EAGER,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    beat_schedule={
        "reap-expired-leases": {"task": "farm.reap", "schedule": float(os.environ.get("AGILEPLUS_REAP_EVERY", "10"))},
        "merge-queues": {"task": "review.process_merge_queues",
                         "schedule": float(os.environ.get("AGILEPLUS_MERGE_QUEUE_EVERY", "30"))},
    },
    beat_schedule_filename=str(settings.DATA_DIR / "celerybeat-schedule"),
)
