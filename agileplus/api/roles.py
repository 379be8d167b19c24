"""Who a caller is: the role of the authenticated user and the actor its changes are recorded as.

The actor written into the audit chain always comes from here, never from a request body.
"""

from __future__ import annotations

from agileplus.core.actors import Actor


def role_of(user) -> str:
    if user is None or not user.is_authenticated:
        return ""
    role = getattr(user, "api_role", None) if hasattr(user, "api_role") else None
    if role is not None:
        return role.role
    return "admin" if user.is_superuser else "human"


def actor_for_user(user) -> Actor:
    role = role_of(user)
    if role == "agent":
        api_role = user.api_role
        return Actor("agent", api_role.agent or user.username)
    return Actor({"ci": "ci", "admin": "admin"}.get(role, "human"), user.username)
