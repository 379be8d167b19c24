"""The Celery app. The broker is a doorbell: messages carry only a job id; the
database holds the truth (claims, leases, fencing), so duplicate delivery is harmless.

Configuration is Django's (``CELERY_*`` in agileplus/settings.py); tasks live in each app's
``tasks.py`` and are found by ``autodiscover_tasks`` when a worker starts (Celery's Django
fixup runs ``django.setup()`` then). Importing this module does not set Django up.
"""

from __future__ import annotations

import logging
import os

from celery import Celery, signals
from django.conf import settings

from workers.broker import use_atomic_filesystem_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")

use_atomic_filesystem_transport()  # N workers starting at once on the embedded broker (workers/broker.py)

app = Celery("agileplus")


def keep_djangos_logging(loglevel: int | str | None = None, **_: object) -> None:
    """Celery's log set-up, where log lines are JSON: Django's LOGGING stays (a receiver of
    ``setup_logging`` stops Celery from putting its text format in its place); Celery's own loggers
    log at the worker's ``-l`` level."""
    if loglevel:
        logging.getLogger("celery").setLevel(loglevel.upper() if isinstance(loglevel, str) else loglevel)


if settings.LOG_FORMAT == "json":
    signals.setup_logging.connect(keep_djangos_logging, weak=False)
    logging.captureWarnings(True)  # Celery warns (a root worker, say) before it sets logging up
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

import workers.lifecycle  # noqa: E402,F401 - worker heartbeat signals


def make_broker_folders() -> None:
    """The embedded (filesystem) broker's folders: every process that rings or serves it needs them."""
    if settings.CELERY_EMBEDDED_BROKER:
        for sub in ("out", "processed", "control"):
            (settings.BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)


make_broker_folders()
