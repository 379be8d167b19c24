from django.apps import AppConfig


class WorkflowConfig(AppConfig):
    name = "agileplus.workflow"
    label = "workflow"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # What follows every transition and every applied review is the workflow's: its steps,
        # plugged into the layers below (core/ports.py).
        from agileplus.features.services import follow_ups  # late: models load after apps
        from agileplus.review.services import after_review  # late: models load after apps
        from agileplus.workflow import services  # late: models load after apps

        follow_ups.plug(services.record_follow_ups)
        after_review.plug(services.record_after_review)
