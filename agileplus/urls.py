from django.contrib import admin
from django.urls import include, path

from agileplus.api.throttles import throttle_logins
from agileplus.operations.views import metrics_view

urlpatterns = [
    path("admin/login/", throttle_logins(admin.site.login), name="admin-login"),  # before admin.site.urls
    path("admin/", admin.site.urls),
    path("api/events/", include("agileplus.events.urls")),
    path("api/", include("agileplus.api.urls")),
    path("metrics", metrics_view, name="metrics"),  # Prometheus (agileplus/operations)
    path("", include("agileplus.dashboard.urls")),
]
