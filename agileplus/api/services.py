"""API identity services: tokens with roles."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from agileplus.api.models import ApiRole
from agileplus.core.errors import DomainError

ROLES = [r for r, _ in ApiRole.ROLES]


def create_api_token(username: str, role: str, *, agent: str = "") -> str:
    """Create (or rotate) the token of ``username`` with ``role``; returns the key, shown once."""
    if role not in ROLES:
        raise DomainError(f"unknown role '{role}'", field="role", fix=f"use one of {', '.join(ROLES)}")
    if role == "agent" and not agent:
        raise DomainError("an agent token needs the harness it acts as", field="agent",
                          fix="pass agent, e.g. claude-code")
    if not username or len(username) > 150:
        raise DomainError("username must be 1-150 characters", field="username")
    with transaction.atomic():
        user, _ = get_user_model().objects.get_or_create(username=username)
        ApiRole.objects.update_or_create(user=user, defaults={"role": role, "agent": agent if role == "agent" else ""})
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user).key
