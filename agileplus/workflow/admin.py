"""Pending workflow follow-ups in the admin: what is still owed, and why it failed."""

from __future__ import annotations

from django.contrib import admin

from agileplus.core.admin_mixins import ReadOnlyAdminMixin
from agileplus.workflow.models import FollowUp


@admin.register(FollowUp)
class FollowUpAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("kind", "wp", "feature", "created_at", "attempts", "last_attempt_at", "last_error")
    list_filter = ("kind",)
