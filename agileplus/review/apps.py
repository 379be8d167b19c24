from django.apps import AppConfig

from agileplus.core import doorbells


class ReviewConfig(AppConfig):
    name = "agileplus.review"

    def ready(self) -> None:
        # review's services ring their tasks by their names (core/doorbells.py); this is where they are.
        doorbells.install("review.review_wp", "agileplus.review.tasks.review_wp")
        doorbells.install("review.run_request", "agileplus.review.tasks.run_review_request")
