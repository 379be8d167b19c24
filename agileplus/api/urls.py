from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from agileplus.api import views as v

F = "features/<slug:slug>"
W = f"{F}/wps/<str:wp>"
urlpatterns = [
    path("health", v.health, name="health"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("projects", v.ProjectList.as_view(), name="projects"),
    path("features", v.FeatureList.as_view(), name="features"),
    path(F, v.FeatureDetail.as_view(), name="feature"),
    path(f"{F}/wps", v.WPList.as_view(), name="wps"),
    path(f"{F}/implement", v.Implement.as_view(), name="implement"),
    path(f"{F}/audit", v.AuditList.as_view(), name="audit"),
    path(f"{F}/audit/verify", v.AuditVerify.as_view(), name="audit-verify"),
    path(f"{F}/costs", v.CostList.as_view(), name="costs"),
    path(W, v.WPDetail.as_view(), name="wp"),
    path(f"{W}/transition", v.WPTransition.as_view(), name="wp-transition"),
    path(f"{W}/move", v.WPMove.as_view(), name="wp-move"),
    path(f"{W}/review", v.WPReview.as_view(), name="wp-review"),
    path(f"{W}/reviews", v.ReviewList.as_view(), name="wp-reviews"),
    path("jobs", v.JobList.as_view(), name="jobs"),
    path("jobs/<str:job_id>", v.JobDetail.as_view(), name="job"),
    path("jobs/<str:job_id>/log", v.JobLog.as_view(), name="job-log"),
    path("jobs/<str:job_id>/cancel", v.JobCancel.as_view(), name="job-cancel"),
    path("events", v.EventList.as_view(), name="events"),
    path("agents", v.AgentList.as_view(), name="agents"),
    path("workers", v.WorkerList.as_view(), name="workers"),
    path("tokens", v.TokenCreate.as_view(), name="tokens"),
]
