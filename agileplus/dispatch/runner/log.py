"""The run's log and heartbeat: lines said by the runner and the agent, redacted as streams and
written in batches with the latest progress (``RunLog.say``, ``flush``); the lease renewed by a
heartbeat thread, which also stores the CLI's session at each beat. Part of ``JobRun``.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from agileplus.dispatch import job_log, services
from agileplus.dispatch.claims import StaleAttempt

log = logging.getLogger("agileplus.runner")
LOG_FLUSH_LINES = 50
LOG_FLUSH_SECONDS = 0.2


class RunLog:
    """The log and heartbeat steps of ``JobRun`` (its state is set in ``JobRun.__init__``)."""

    def say(self, text: str, stream: str = "agileplus", *, activity: bool = False) -> None:
        """One log line (``activity``: also the job's current activity), redacted when flushed."""
        self.log.add(timezone.now(), stream, text, activity=activity)
        if len(self.log) >= LOG_FLUSH_LINES or time.monotonic() - self.last_flush > LOG_FLUSH_SECONDS:
            self.flush(hold=True)

    def flush(self, *, hold: bool = False) -> None:
        """One write for the batch of log lines and one for the latest progress, not one per line:
        an agent printing without pause must not turn into a database write per line. Lines are
        redacted as a stream (a secret split across two lines is found in both); with ``hold`` an
        agent's last line waits briefly for the next."""
        taken = self.log.take(self.secret_values, hold=hold)
        lines = [(ts, stream, text) for ts, stream, text, _ in taken]
        activity = [text for _ts, _stream, text, is_activity in taken if is_activity]
        if activity:
            self.progress["current_activity"] = activity[-1]
        progress, self.progress = self.progress, {}
        try:
            if lines and not self.fenced:
                job_log.append_log(self.claim, lines)
            if progress and not self.fenced:
                job_log.update_progress(self.claim, **progress)
        except StaleAttempt:
            self.fenced = True
        # Timed from the end of the write: far from the database a write (5 round trips) outlasts
        # the interval, and timing from its start flushed every following line on its own.
        self.last_flush = time.monotonic()

    def _beat(self) -> None:
        interval = max(0.2, settings.JOB_LEASE_SECONDS / 3)
        try:
            while not self.stop_heartbeat.wait(interval):
                try:
                    held = services.heartbeat(self.claim)
                except DatabaseError as exc:  # a database restart or a busy SQLite: try again next beat
                    log.warning("heartbeat of %s failed: %s", self.claim.job_id, exc)
                    connection.close()
                    continue
                if not held:
                    self.fenced = True
                    return
                self.capture_session()
        finally:
            connection.close()

    def capture_session(self) -> None:
        """Store the CLI's session (id + files) if it changed; a failure waits for the next beat."""
        if self.capture is None:
            return
        try:
            self.capture.capture()
        except (DatabaseError, OSError) as exc:
            log.warning("session capture of %s failed: %s", self.claim.job_id, exc)
