from django.apps import AppConfig


class WorkflowConfig(AppConfig):
    name = "agileplus.workflow"
    label = "workflow"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every transition records what follows it: the workflow's table, handed to the layer below.
        from agileplus.features.services import record_follow_ups_with  # late: models load after apps
        from agileplus.workflow.services import record_follow_ups  # late: models load after apps

        record_follow_ups_with(record_follow_ups)
