from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "agileplus.review"
    label = "review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from agileplus.features.signals import wp_transitioned
        from agileplus.review.autodispatch import on_wp_transitioned

        wp_transitioned.connect(on_wp_transitioned, dispatch_uid="agileplus.review.autodispatch")
