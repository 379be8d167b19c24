"""The audit chain in the admin: read-only (no add, change or delete), with a verify action."""

from __future__ import annotations

from django.contrib import admin, messages

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.core.admin_mixins import ReadOnlyAdminMixin
from agileplus.features.models import Feature


def report_verification(modeladmin: admin.ModelAdmin, request, features) -> None:
    """Verify each feature's chain and say the result as an admin message."""
    for feature in features:
        result = verify_chain(feature)
        if result.ok:
            modeladmin.message_user(request, f"{feature}: ✓ audit chain intact ({result.count} entries verified)",
                                    level=messages.SUCCESS)
        else:
            problems = "; ".join(str(p) for p in result.problems)
            modeladmin.message_user(request, f"{feature}: ✗ audit chain broken: {problems}", level=messages.ERROR)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("feature", "seq", "transition", "actor", "timestamp", "short_hash")
    list_filter = ("feature", "actor")
    search_fields = ("transition", "actor", "hash", "feature__slug")
    list_select_related = ("feature",)
    ordering = ("feature", "seq")
    actions = ["verify_selected_chains"]

    @admin.display(description="hash")
    def short_hash(self, obj: AuditEntry) -> str:
        return obj.hash[:12]

    @admin.action(description="Verify the chains of the selected entries' features")
    def verify_selected_chains(self, request, queryset):
        report_verification(self, request, Feature.objects.filter(pk__in=queryset.values("feature_id")).order_by("pk"))
