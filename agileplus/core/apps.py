from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "agileplus.core"
    label = "agileplus_core"
    default_auto_field = "django.db.models.BigAutoField"
