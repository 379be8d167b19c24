from django.apps import AppConfig

from agileplus.core import doorbells


def _tasks():
    from agileplus.dispatch import tasks  # late: Celery and the runner load on the first ring, not at start

    return tasks


class DispatchConfig(AppConfig):
    name = "agileplus.dispatch"
    label = "dispatch"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # dispatch's services ring their task by its name (core/doorbells.py); this is where it is.
        doorbells.install("farm.run_job", lambda: _tasks().run_job)
