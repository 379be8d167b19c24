from django.urls import path

from agileplus.events import views

urlpatterns = [
    path("stream", views.stream, name="events-stream"),
    path("stream/<slug:feature_slug>", views.stream, name="events-stream-feature"),
    path("jobs/<str:job_id>/log", views.job_log, name="events-job-log"),
]
