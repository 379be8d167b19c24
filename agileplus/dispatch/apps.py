from django.apps import AppConfig

from agileplus.core import doorbells


class DispatchConfig(AppConfig):
    name = "agileplus.dispatch"

    def ready(self) -> None:
        # dispatch's services ring their task by its name (core/doorbells.py); this is where it is.
        doorbells.install("farm.run_job", "agileplus.dispatch.tasks.run_job")
