from django.urls import path

from agileplus.api import views

urlpatterns = [
    path("health", views.health, name="health"),
]
