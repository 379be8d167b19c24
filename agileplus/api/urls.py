from django.conf import settings
from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from agileplus.api import views as v
from agileplus.api import views_jobs as vj
from agileplus.api.output import ENUM_NAME_OVERRIDES


class WPCode:
    """WP02, wp2, 2 (anything else is a 404 before it reaches the database)."""

    regex = r"[A-Za-z0-9]{1,20}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class JobId(WPCode):
    regex = r"[A-Za-z0-9_.\-]{1,40}"


register_converter(WPCode, "api_wp")
register_converter(JobId, "api_job")

F = "features/<slug:slug>"
W = f"{F}/wps/<api_wp:wp>"
J = "jobs/<api_job:job_id>"
urlpatterns = [
    path("health", v.health, name="health"),
    path("schema/", SpectacularAPIView.as_view(custom_settings={"ENUM_NAME_OVERRIDES": {
        **settings.SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}), **ENUM_NAME_OVERRIDES}}), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("auth/token", v.Login.as_view(), name="auth-token"),
    path("tokens", v.TokenCreate.as_view(), name="tokens"),
    path("projects", v.ProjectList.as_view(), name="projects"),
    path("features", v.FeatureList.as_view(), name="features"),
    path(F, v.FeatureDetail.as_view(), name="feature"),
    path(f"{F}/wps", v.WPList.as_view(), name="wps"),
    path(f"{F}/implement", v.Implement.as_view(), name="implement"),
    path(f"{F}/audit", v.AuditList.as_view(), name="audit"),
    path(f"{F}/audit/verify", v.AuditVerify.as_view(), name="audit-verify"),
    path(f"{F}/costs", vj.CostList.as_view(), name="costs"),
    path(f"{F}/merge-queue", v.MergeQueueView.as_view(), name="merge-queue"),
    path(W, v.WPDetail.as_view(), name="wp"),
    path(f"{W}/transition", v.WPTransition.as_view(), name="wp-transition"),
    path(f"{W}/move", v.WPMove.as_view(), name="wp-move"),
    path(f"{W}/review", v.WPReview.as_view(), name="wp-review"),
    path(f"{W}/reviews", v.ReviewList.as_view(), name="wp-reviews"),
    path(f"{W}/candidates", v.CandidateList.as_view(), name="wp-candidates"),
    path("review-requests/<int:request_id>", v.ReviewRequestDetail.as_view(), name="review-request"),
    path("jobs", vj.JobList.as_view(), name="jobs"),
    path(J, vj.JobDetail.as_view(), name="job"),
    path(f"{J}/log", vj.JobLog.as_view(), name="job-log"),
    path(f"{J}/cancel", vj.JobCancel.as_view(), name="job-cancel"),
    # /api/events/stream and /api/events/jobs/… are agileplus.events.urls (routed before this file).
    path("events", vj.EventList.as_view(), name="events"),
    path("agents", vj.AgentList.as_view(), name="agents"),
    path("workers", vj.WorkerList.as_view(), name="workers"),
    re_path(r"^[\s\S]*$", v.NoRoute.as_view(), name="api-404"),
]
