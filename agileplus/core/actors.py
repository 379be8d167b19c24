"""Actors: who performed a change, written ``kind:name`` (``human:alice``, ``agent:claude-code``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agileplus.core.errors import DomainError

ACTOR_KINDS = ("human", "agent", "ci", "system", "admin")
_ACTOR_RE = re.compile(r"^(?P<kind>[a-z]+):(?P<name>[A-Za-z0-9._@+\-]{1,100})$")


@dataclass(frozen=True)
class Actor:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def may_approve(self) -> bool:
        """Only people and CI may approve or merge; an agent never approves its own work."""
        return self.kind in {"human", "ci", "admin"}


def parse_actor(value: str | Actor, *, field: str = "actor") -> Actor:
    if isinstance(value, Actor):
        return value
    match = _ACTOR_RE.match(value or "")
    if not match or match["kind"] not in ACTOR_KINDS:
        raise DomainError(
            f"'{value}' is not an actor",
            field=field,
            fix=f"write kind:name with kind one of {', '.join(ACTOR_KINDS)}, e.g. human:alice",
        )
    return Actor(match["kind"], match["name"])


SYSTEM = Actor("system", "agileplus")
SYSTEM_TIMEOUT = Actor("system", "timeout")
SYSTEM_REAPER = Actor("system", "reaper")  # lost attempts: a dead worker, an expired lease
CI_AUTOMATION = Actor("ci", "automation")
