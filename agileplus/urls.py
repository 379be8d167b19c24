from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/events/", include("agileplus.events.urls")),
    path("api/", include("agileplus.api.urls")),
    path("", include("agileplus.dashboard.urls")),
]
