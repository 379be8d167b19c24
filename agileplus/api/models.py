"""API identities: each user (person, CI bot, agent, worker) has one role."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiRole(models.Model):
    HUMAN, AGENT, CI, ADMIN = "human", "agent", "ci", "admin"
    ROLES = [(HUMAN, "human"), (AGENT, "agent"), (CI, "ci"), (ADMIN, "admin")]

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_role")
    role = models.CharField(max_length=10, choices=ROLES, default=HUMAN)
    agent = models.CharField(max_length=64, blank=True,
                             help_text="for role agent: the harness it acts as (e.g. claude-code)")
    job_id = models.CharField(max_length=64, blank=True,
                              help_text="for a per-job agent token: the one job (and its WP) it may act on")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="after this, the token is refused")

    def __str__(self) -> str:
        return f"{self.user} ({self.role}{':' + self.agent if self.agent else ''})"
