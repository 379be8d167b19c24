"""Admin building blocks shared by the apps' admin modules."""

from __future__ import annotations


class ReadOnlyAdminMixin:
    """Records written only by services: viewable, never added, changed or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
