"""Canonical JSON (RFC 8785) for hashing, with no floats in hashed fields.

``canonical_json`` is a fast encoder that is byte-identical to ``rfc8785.dumps``
for every value ``hashable`` returns (strings, safe integers, booleans, null,
lists, string-keyed objects): the standard library's C encoder already writes
RFC 8785's string escapes and integer forms, and sorts keys by code point, which
equals RFC 8785's UTF-16 order unless a string holds characters outside the
Basic Multilingual Plane. Those rare inputs (and lone surrogates, which RFC 8785
refuses) are handed to ``rfc8785`` itself. ``tests/unit/test_canonical.py``
proves the equality property with hypothesis.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from decimal import Decimal
from typing import Any

import rfc8785

# I-JSON: integers beyond 2**53 - 1 lose precision in other JSON readers; hashed as strings.
MAX_SAFE_INTEGER = 2**53 - 1

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
# Characters where code-point order differs from UTF-16 order, or that RFC 8785 refuses.
_NEEDS_REFERENCE = re.compile("[\ud800-\udfff\U00010000-\U0010ffff]")


def hashable(value: Any) -> Any:
    """Make ``value`` safe for canonical hashing: floats and decimals become strings,
    integers outside I-JSON's safe range become strings, datetimes become UTC ISO
    strings, tuples become lists, keys become strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, (float, Decimal)):
        return format(value, "f") if isinstance(value, Decimal) else repr(value)
    if isinstance(value, dt.datetime):
        return utc_iso(value)
    if isinstance(value, dict):
        return {str(k): hashable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [hashable(v) for v in value]
    return str(value)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a value already passed through ``hashable``."""
    text = _ENCODER.encode(value)
    if not text.isascii() and _NEEDS_REFERENCE.search(text) is not None:
        return rfc8785.dumps(value)
    return text.encode("utf-8")


def canonical_bytes(value: Any) -> bytes:
    return canonical_json(hashable(value))


def sha256_hex(value: Any) -> str:
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def utc_iso(moment: dt.datetime) -> str:
    """UTC, microsecond precision, ``Z`` suffix: the one timestamp form that is hashed."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
