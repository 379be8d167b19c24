"""Log lines as JSON, one object a line (AGILEPLUS_LOG_FORMAT=json, as docker/compose.yaml sets),
for a log collector reading containers' stdout; each line of a dispatch job's run names the job.

The job id travels in a context variable that ``job_logging`` sets around a run (the runner's
``run_job``), so no call site has to pass it; ``extra={"job_id": ...}`` on a call wins.
A long-running process's own notices (a worker's start, the database up) go through ``notice``, so
they too are JSON lines there, and the plain lines they always were elsewhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator

from django.conf import settings

from agileplus.core.text import terminal_safe


def notice(message: str, *, logger: str = "agileplus", level: int = logging.INFO) -> None:
    """A process's notice for whoever runs it: a JSON log line when log lines are JSON, else the
    plain line on stderr, with control characters made visible (names come from users)."""
    if settings.LOG_FORMAT == "json":
        logging.getLogger(logger).log(level, message)
    else:
        print(terminal_safe(message), file=sys.stderr, flush=True)


current_job: contextvars.ContextVar[str] = contextvars.ContextVar("agileplus_log_job", default="")


@contextlib.contextmanager
def job_logging(job_id: str) -> Iterator[None]:
    """Every log line of this thread names ``job_id`` until the block ends."""
    token = current_job.set(job_id)
    try:
        yield
    finally:
        current_job.reset(token)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "pid", "job_id"?, "exc_info"?}``; time in UTC, ISO 8601."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        job_id = getattr(record, "job_id", "") or current_job.get()
        if job_id:
            line["job_id"] = job_id
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
