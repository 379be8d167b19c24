"""Worker presence: a heartbeat row per worker with the harnesses it can run and its
active sessions, so `agileplus agents list` can show the farm."""

from __future__ import annotations

import logging
import os
import threading

from celery import signals
from django.conf import settings

_stop = threading.Event()

log = logging.getLogger("agileplus.worker")


def _active_sessions(hostname: str) -> int:
    from agileplus.dispatch.models import DispatchJob, JobState  # late: no Django yet at load

    return DispatchJob.objects.filter(worker=hostname, state__in=JobState.HELD).count()


def _beat(hostname: str, harnesses: dict, concurrency: int) -> None:
    from django.db import connection

    from agileplus.dispatch.reaper import record_worker_heartbeat  # late: no Django yet at load

    while True:
        try:
            record_worker_heartbeat(hostname, harnesses=harnesses, concurrency=concurrency,
                                    active_sessions=_active_sessions(hostname))
        except Exception:  # noqa: BLE001 - the database may be restarting; try again next beat
            connection.close()
        if _stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
            return


@signals.worker_ready.connect
def _start_heartbeat(sender=None, **_kwargs) -> None:
    hostname = sender.hostname if sender else os.environ.get("AGILEPLUS_WORKER_NAME", "worker")
    os.environ.setdefault("AGILEPLUS_WORKER_NAME", hostname)
    wanted = [h for h in os.environ.get("AGILEPLUS_WORKER_HARNESSES", "").split(",") if h]
    # Late: this module is imported with the Celery app, before Django is set up (flower, celery CLI).
    from agileplus.dispatch.sandboxing import local_harnesses  # late: no Django yet at load

    harnesses = local_harnesses(wanted or None)
    concurrency = int(getattr(sender, "concurrency", 1) or 1) if sender else 1
    threading.Thread(target=_beat, args=(hostname, harnesses, concurrency), daemon=True).start()
    threading.Thread(target=_reap_orphans, daemon=True).start()


def _reap_orphans() -> None:
    """A restarted worker ends the agents its previous life left running."""
    from django.db import connection

    from agileplus.dispatch.runner import reap_orphaned_agents  # late: no Django yet at load

    try:
        reap_orphaned_agents()
    except Exception:  # noqa: BLE001 - the database may not be reachable yet; the reaper task retries
        log.warning("could not look for orphaned agent processes", exc_info=True)
    finally:
        connection.close()


@signals.worker_shutting_down.connect
def _hand_on_running_jobs(sender=None, **_kwargs) -> None:
    """SIGTERM (a rolling restart, `docker stop`): the running jobs' processes see it at their next
    tick, stop their agents, push, capture the session and put the job back in the queue."""
    from agileplus.dispatch.reaper import mark_shutting_down  # late: no Django yet at load

    name = os.environ.get("AGILEPLUS_WORKER_NAME")
    if name:
        mark_shutting_down(name)


@signals.worker_shutdown.connect
def _stop_heartbeat(sender=None, **_kwargs) -> None:
    _stop.set()
    from django.utils import timezone

    from agileplus.dispatch.models import Worker  # late: no Django yet at load

    name = os.environ.get("AGILEPLUS_WORKER_NAME")
    if name:
        Worker.objects.filter(hostname=name).update(stopped_at=timezone.now(), active_sessions=0)
