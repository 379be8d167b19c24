from django.contrib import admin

from agileplus.api.models import ApiRole


@admin.register(ApiRole)
class ApiRoleAdmin(admin.ModelAdmin):
    """Roles of API users (tokens themselves are under Auth Token)."""

    list_display = ("user", "role", "agent")
    list_filter = ("role",)
    search_fields = ("user__username", "agent")
    autocomplete_fields = ("user",)
