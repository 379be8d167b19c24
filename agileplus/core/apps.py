from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "agileplus.core"
    label = "agileplus_core"
