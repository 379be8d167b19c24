"""Ports: a call from one layer up to a layer above it, with no import.

The layer below names what it calls (a ``Port``) and calls it; the layer above plugs its function
in when Django loads the apps (its ``apps.py``). What follows a transition
(``features.services.follow_ups``, the workflow's recorder) and what follows a review
(``review.services.after_review``, the workflow's recorder of its merge or send-back) are called so. A Celery task
of a service's own app is rung by its name instead (``core/doorbells.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Port:
    """One call up, plugged once at start; calling it before then is a wiring error."""

    def __init__(self, what: str, plugged_by: str) -> None:
        self.what, self.plugged_by = what, plugged_by
        self._function: Callable[..., Any] | None = None

    def plug(self, function: Callable[..., Any]) -> None:
        self._function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._function is None:
            raise RuntimeError(f"no {self.what}: is {self.plugged_by} in INSTALLED_APPS?")
        return self._function(*args, **kwargs)
