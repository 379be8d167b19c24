"""Processes of the farm: `web`, `worker`, `beat`, `reaper`, and `up` (all of them at once); `doctor`."""

from __future__ import annotations

import os
import socket
import sys

import click
from django.conf import settings

from agileplus.cli.context import json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json
from agileplus.core.logs import notice
from agileplus.core.supervisor import run_farm
from agileplus.dispatch.reaper import reap_expired
from agileplus.dispatch.runner import restart_worker
from agileplus.dispatch.sandboxing import local_harnesses
from agileplus.dispatch.services import queue_for
from agileplus.operations.webhooks import start_deliverer
from agileplus.review.requests import release_lost_requests
from workers.broker import inspect_folder


def _node_name(hostname: str | None) -> str:
    name = hostname or os.environ.get("AGILEPLUS_WORKER_NAME") or socket.gethostname()
    return name if "@" in name else f"worker@{name}"


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=click.IntRange(1, 65535), show_default=True)
@click.option("--workers", default=1, type=click.IntRange(1, 64), show_default=True)
@click.option("--graceful-timeout", type=click.FloatRange(0, 3600), show_default=True,
              default=lambda: float(os.environ.get("AGILEPLUS_WEB_GRACEFUL_SECONDS", "10")),
              help="On SIGTERM, seconds open requests and event streams get before they are closed "
                   "(AGILEPLUS_WEB_GRACEFUL_SECONDS)")
def web(host: str, port: int, workers: int, graceful_timeout: float) -> None:
    """Serve the dashboard, admin and API (ASGI, uvicorn)."""
    import uvicorn

    # Without a graceful timeout uvicorn waits for every open connection on SIGTERM, and an
    # event stream never ends: the server would never stop. proxy_headers off: X-Forwarded-For is
    # read by the throttles only through AGILEPLUS_API_TRUSTED_PROXIES (uvicorn trusts it from loopback).
    uvicorn.run("agileplus.asgi:application", host=host, port=port, workers=workers, log_level="warning",
                lifespan="off", timeout_graceful_shutdown=graceful_timeout, proxy_headers=False)


@cli.command()
@click.option("--hostname", default=None, help="Worker name (default: this machine's hostname)")
@click.option("--concurrency", "-c", default=2, type=click.IntRange(1, 256), show_default=True,
              help="Max concurrent agent sessions")
@click.option("--harnesses", default="", help="Comma-separated harnesses to serve (default: all available here)")
@click.option("--loglevel", default="warning", show_default=True)
def worker(hostname: str | None, concurrency: int, harnesses: str, loglevel: str) -> None:
    """Run a Celery worker that claims and runs dispatch jobs."""

    node = _node_name(hostname)
    wanted = [h.strip() for h in harnesses.split(",") if h.strip()]
    found = local_harnesses(wanted or None)
    names = [n for n, info in found.items() if info["available"]]
    if not names:
        raise click.ClickException("no harness is available on this machine: " +
                                   "; ".join(f"{n}: {i['reason']}" for n, i in found.items()))
    # Before any job is taken: what this name held was lost with its previous life (kill -9).
    for job_id in restart_worker(node):
        notice(f"worker {node}: released job {job_id}, lost when this worker last stopped")
    for request_id in release_lost_requests(node):
        notice(f"worker {node}: queued review request {request_id} again, lost when this worker last stopped")
    _check_broker_folder(f"worker {node}")
    # Children inherit these: the runner names its claims and data folder after the worker.
    os.environ["AGILEPLUS_WORKER_NAME"] = node
    os.environ["AGILEPLUS_WORKER_HARNESSES"] = ",".join(names)
    from workers.celery import app  # late: the Celery app only for the commands that start one

    queues = ",".join([queue_for(n) for n in names] + ["agileplus"])
    notice(f"worker {node}: harnesses {', '.join(names)}; concurrency {concurrency}")
    # Celery's banner is not a log line: left out (its global --quiet) where log lines are JSON.
    quiet = ["--quiet"] if settings.LOG_FORMAT == "json" else []
    app.worker_main([*quiet, "worker", "-n", node, "-Q", queues, "-c", str(concurrency), "-E", "-l", loglevel,
                     "--without-gossip", "--without-mingle"])


def _check_broker_folder(who: str) -> dict | None:
    """The embedded broker's folder check (workers/broker.py: inspect_folder), said on stderr."""
    if not settings.CELERY_EMBEDDED_BROKER:
        return None
    report = inspect_folder(settings.BROKER_DIR).as_dict()
    for item in report["quarantined_now"]:
        notice(f"{who}: broker file {item['file']} quarantined ({item['reason']}) in "
               f"{settings.BROKER_DIR / 'quarantine'}")
    return report


@cli.command()
@json_option
def doctor(as_json: bool) -> None:
    """Check the embedded broker's folder: move every file no worker can read (empty, corrupt,
    foreign) to its quarantine folder and report it; exit 1 if this run found any."""
    report = _check_broker_folder("doctor")
    if as_json:
        echo_json({"broker": report})
    elif report is None:
        echo("broker: not the embedded one (CELERY_BROKER_URL); nothing to check here")
    else:
        waiting = ", ".join(f"{q} {n}" for q, n in sorted(report["queued"].items())) or "none"
        echo(f"broker folder {report['folder']}: messages waiting: {waiting}; "
                   f"quarantined now: {len(report['quarantined_now'])}; in quarantine: {len(report['quarantine'])}")
    if report and report["quarantined_now"]:
        sys.exit(1)


@cli.command()
@click.option("--loglevel", default="warning", show_default=True)
def beat(loglevel: str) -> None:
    """Run Celery beat (the lease reaper's schedule) and the webhook deliverer."""
    from workers.celery import app  # late: the Celery app only for the commands that start one

    start_deliverer()  # webhooks go from here (one per farm), never behind agent runs on the workers
    app.Beat(loglevel=loglevel, quiet=settings.LOG_FORMAT == "json").run()


@cli.command()
@json_option
def reaper(as_json: bool) -> None:
    """Re-queue jobs whose lease expired, once."""

    result = reap_expired()
    if as_json:
        echo_json(result)
    else:
        echo(f"re-queued {len(result['requeued'])}, failed {len(result['failed'])}, "
                   f"re-rung {len(result['rung'])}")


@cli.command()
@click.option("--port", default=8000, type=click.IntRange(1, 65535), show_default=True)
@click.option("--concurrency", "-c", default=3, type=click.IntRange(1, 64), show_default=True)
def up(port: int, concurrency: int) -> None:
    """Run the whole farm here: web + dashboard, one worker, beat (and the relay with NATS)."""

    sys.exit(run_farm(port=port, concurrency=concurrency))
