"""The event outbox in the admin: read-only; rows are written by the transitions themselves."""

from __future__ import annotations

from django.contrib import admin

from agileplus.core.admin_mixins import ReadOnlyAdminMixin
from agileplus.events.models import Event


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "subject", "feature", "created_at", "published_at", "publish_attempts")
    list_filter = (("published_at", admin.EmptyFieldListFilter), "feature")
    search_fields = ("subject", "msg_id")
    list_select_related = ("feature",)
