"""Webhook endpoints (the secret is never shown) and their delivery log, in the admin."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from agileplus.core.admin_mixins import ReadOnlyAdminMixin
from agileplus.core.errors import DomainError
from agileplus.operations import webhooks
from agileplus.operations.models import WebhookDelivery, WebhookEndpoint


class EndpointForm(forms.ModelForm):
    class Meta:
        model = WebhookEndpoint
        fields = ("name", "url", "subjects", "format", "enabled")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhooks.check_destination(url)
        except DomainError as exc:
            raise forms.ValidationError(f"{exc.message} ({exc.fix})") from None
        return url

    def clean_subjects(self) -> list[str]:
        try:
            return webhooks.check_subjects(list(self.cleaned_data["subjects"] or []))
        except DomainError as exc:
            raise forms.ValidationError(f"{exc.message} ({exc.fix})") from None


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("name", "url", "subjects", "format", "enabled", "created_at")

    def save_model(self, request, obj, form, change) -> None:
        if not change:  # a new endpoint: its secret and its place in the outbox, as the CLI gives them
            endpoint, secret = webhooks.add_endpoint(obj.name, obj.url, obj.subjects,
                                                     slack=obj.format == WebhookEndpoint.SLACK)
            obj.pk, obj.secret, obj.after_event_id = endpoint.pk, endpoint.secret, endpoint.after_event_id
            self.message_user(request, f"Secret of {obj.name} (shown once): {secret}")
            return
        super().save_model(request, obj, form, change)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "endpoint_name", "subject", "state", "attempts", "last_status", "created_at",
                    "delivered_at", "next_attempt_at", "last_error")
    list_filter = ("state", "subject", "endpoint_name")
