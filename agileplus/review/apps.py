from django.apps import AppConfig

from agileplus.core import doorbells


def _tasks():
    from agileplus.review import tasks  # late: Celery and the checks load on the first ring, not at start

    return tasks


class ReviewConfig(AppConfig):
    name = "agileplus.review"
    label = "review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # review's services ring their tasks by their names (core/doorbells.py); this is where they are.
        doorbells.install("review.review_wp", lambda: _tasks().review_wp)
        doorbells.install("review.run_request", lambda: _tasks().run_review_request)
