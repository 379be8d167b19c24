from django.contrib import admin
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from agileplus.api.models import ApiRole


@admin.register(ApiRole)
class ApiRoleAdmin(admin.ModelAdmin):
    """Roles of API users (tokens themselves are under Auth Token)."""

    list_display = ("user", "role", "agent")
    list_filter = ("role",)
    search_fields = ("user__username", "agent")
    autocomplete_fields = ("user",)


admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class HashedTokenAdmin(TokenAdmin):
    """Tokens are stored as digests: the admin shows whose token it is and since when, and can revoke
    one (delete). It cannot create one, as the key would have to be shown: `manage.py api_token USER
    --role ROLE` (or POST /api/tokens) issues a token and prints its key once."""

    list_display = ("user", "created")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
