from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "agileplus.operations"
