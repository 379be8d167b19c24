from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from agileplus.api.throttles import throttle_logins
from agileplus.api.urls import JobId, WPCode
from agileplus.dashboard import views

register_converter(WPCode, "dash_wp")
register_converter(JobId, "dash_job")

urlpatterns = [
    path("", views.index, name="dashboard"),
    path("features/<slug:slug>/", views.feature, name="dashboard-feature"),
    path("features/<slug:slug>/panel", views.feature_panel, name="dashboard-panel"),
    path("features/<slug:slug>/dag", views.dag, name="dashboard-dag"),
    path("features/<slug:slug>/dag/svg", views.dag_svg, name="dashboard-dag-svg"),
    path("features/<slug:slug>/wps/<dash_wp:code>", views.wp, name="dashboard-wp"),
    path("jobs/<dash_job:job_id>", views.job, name="dashboard-job"),
    path("farm/", views.farm_page, name="dashboard-farm"),
    path("farm/timeline", views.timeline, name="dashboard-timeline"),
    path("farm/timeline/svg", views.timeline_svg, name="dashboard-timeline-svg"),
    path("login/", throttle_logins(auth_views.LoginView.as_view()), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
