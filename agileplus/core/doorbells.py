"""Doorbells: a service rings a Celery task of its own app without importing the task layer.

A message carries only ids (the database holds the truth); the service names its task by the
task's wire name (``farm.run_job``, ``review.review_wp``, ``review.run_request``). The tasks
module imports the service, so the service cannot import the task: each app's ``apps.py`` says,
when Django loads the apps, where its task is (``install``, a dotted path), as the workflow hands
``transition_wp`` its recorder. The task module itself is imported on the first ring, not at
start (a command that rings nothing does not load Celery), and the task's own ``apply_async``
sends it, so ``CELERY_TASK_ALWAYS_EAGER`` still runs it in the calling process.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

_tasks: dict[str, str] = {}


def install(name: str, path: str) -> None:
    """Say where the task ``name`` is: the dotted path of the Celery task, imported on the first ring."""
    _tasks[name] = path


def ring(name: str, *, args: list, queue: str, **options: Any) -> None:
    """Send the task ``name`` with ``args`` to ``queue`` (``options``: Celery's, e.g. ``eta``)."""
    try:
        path = _tasks[name]
    except KeyError:
        raise RuntimeError(f"no task {name!r} installed: is its app in INSTALLED_APPS?") from None
    task = import_string(path)
    if task.name != name:  # the wire name is the contract: the installer and the task agree on it
        raise RuntimeError(f"task {name!r} installed as {task.name!r}")
    task.apply_async(args=args, queue=queue, **options)
