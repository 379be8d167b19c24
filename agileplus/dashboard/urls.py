from django.contrib.auth import views as auth_views
from django.urls import path

from agileplus.api.throttles import throttle_logins
from agileplus.dashboard import views

urlpatterns = [
    path("", views.index, name="dashboard"),
    path("features/<slug:slug>/", views.feature, name="dashboard-feature"),
    path("features/<slug:slug>/panel", views.feature_panel, name="dashboard-panel"),
    path("login/", throttle_logins(auth_views.LoginView.as_view()), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
