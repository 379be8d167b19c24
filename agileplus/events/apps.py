from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "agileplus.events"
