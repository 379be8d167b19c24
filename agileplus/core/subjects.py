"""NATS-style subject patterns: ``*`` matches one token, ``>`` one or more trailing tokens."""

from __future__ import annotations

import re
from functools import lru_cache

from agileplus.core.errors import DomainError


@lru_cache(maxsize=256)
def subject_regex(pattern: str) -> re.Pattern[str]:
    tokens = pattern.split(".")
    if not pattern or any(t == "" for t in tokens):
        raise DomainError(f"'{pattern}' is not a subject pattern", field="--subject",
                          fix="write dot-separated tokens, e.g. agileplus.feature.*.wp.>")
    parts = []
    for index, token in enumerate(tokens):
        if token == ">":
            if index != len(tokens) - 1:
                raise DomainError(f"'{pattern}': '>' may only be the last token", field="--subject",
                                  fix="e.g. agileplus.agent.job.>")
            parts.append(r"[^.]+(?:\.[^.]+)*")
        elif token == "*":
            parts.append(r"[^.]+")
        elif "*" in token or ">" in token:
            raise DomainError(f"'{pattern}': wildcards must be whole tokens", field="--subject",
                              fix="use '*' or '>' between dots")
        else:
            parts.append(re.escape(token))
    return re.compile(r"\.".join(parts) + r"\Z")


def subject_matches(pattern: str, subject: str) -> bool:
    return subject_regex(pattern).match(subject) is not None


def literal_prefix(pattern: str) -> str:
    """The part of ``pattern`` before its first wildcard: a cheap database pre-filter."""
    out = []
    for token in pattern.split("."):
        if token in ("*", ">"):
            return ".".join(out) + "." if out else ""
        out.append(token)
    return pattern
