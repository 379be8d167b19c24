"""Redaction: every secret this process holds (``agileplus.core.secrets.worker_secret_values``) is
removed from whatever agent output the farm stores (``redact``, ``redact_data``; a stream of lines
with ``redact_lines`` and ``LogStream``, so that a secret split across consecutive lines is found):
plainly, reversed, rot13, hex, base64 at every byte alignment (standard and URL-safe, padded or not),
base32 at every alignment, URL-encoded, and any run of at least ``FRAGMENT_CHARS`` characters of one
of those forms (a secret cut short, or wrapped in other text). A secret of ``FUZZY_MIN_CHARS`` or more
is found in any letter case and split by whitespace (spaces, lines, a commit message's paragraphs); a
shorter one only as written (ordinary words run together would match it). Out of reach: a form not
listed here (encrypted, compressed), and a secret leaked a few characters at a time (less than a
fragment per line, lines apart): redaction is the last line of defence; the first is that an agent
gets only the secrets its WP declares. Where agent text is not needed verbatim (audit metadata),
record its ``fingerprint`` instead. In core because every layer stores agent text.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from django.conf import settings

from agileplus.core.secrets import _RESOLVED, MIN_SECRET_CHARS, worker_secret_values

REDACTED = "***"
# A run this long of any form of a secret is redacted wherever it appears.
FRAGMENT_CHARS = 12
HALF = FRAGMENT_CHARS // 2
HEX_SEPARATORS = str.maketrans("", "", ":,.-")
HEX_RUN = re.compile(rf"[0-9a-f]{{{FRAGMENT_CHARS},}}")
# A value this long is found in any letter case and split by whitespace (across words, lines, a
# commit message's paragraphs); a shorter one only as written: ordinary words run together or
# in capitals would match it.
FUZZY_MIN_CHARS = 8
# How much of a stream's previous line is read with the next (``redact_lines``).
TAIL_CHARS = 512
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
ROT13 = str.maketrans(string.ascii_letters, string.ascii_lowercase[13:] + string.ascii_lowercase[:13]
                      + string.ascii_uppercase[13:] + string.ascii_uppercase[:13])
# Hex bytes with separators or prefixes between them (`od -tx1`, `xxd`, `\x6b\x65`, `0x6b, 0x65`):
# at least FRAGMENT_CHARS / 2 bytes in a row.
SEPARATED_HEX = re.compile(rf"(?<![0-9A-Fa-f])(?:\\x|0x)?[0-9A-Fa-f]{{2}}"
                           rf"(?:[ \t:,.\-]{{0,2}}(?:\\x|0x)?[0-9A-Fa-f]{{2}}){{{FRAGMENT_CHARS // 2 - 1},}}")
NOT_HEX_DIGIT = re.compile(r"\\x|0x|[^0-9A-Fa-f]")
BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
def secret_forms(value: str) -> set[str]:
    """How an agent can print ``value`` so that a plain search misses it. A value of
    ``FUZZY_MIN_CHARS`` or more is matched case-folded with whitespace left out (its forms
    are returned folded); a shorter one only as written."""
    raw = value.encode()
    forms = {value, value[::-1], raw.hex(), raw[::-1].hex(), quote(value, safe=""), quote(value[::-1], safe=""),
             value.translate(ROT13), value[::-1].translate(ROT13)} | encoded_forms(value)
    if len(value) >= FUZZY_MIN_CHARS:
        forms = {fold(f) for f in forms}
    else:
        forms |= {raw.hex().upper(), raw[::-1].hex().upper()}
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


def encoded_forms(value: str) -> set[str]:
    """The base64 and base32 characters that encode ``value`` (or its reverse) alone, wherever
    it starts in a 3-byte (base64) or 5-byte (base32) group; base64 in both alphabets."""
    raw, forms = value.encode(), set()
    for data in (raw, raw[::-1]):
        for group, bits, encode in ((3, 6, base64.b64encode), (5, 5, base64.b32encode)):
            for offset in range(group):
                encoded = encode(b"\0" * offset + data).decode().rstrip("=")
                # Keep the characters made of the value's bits alone (not the filler's, not what follows).
                core = encoded[-(-8 * offset // bits):8 * (offset + len(data)) // bits]
                forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


def fold(text: str) -> str:
    """``text`` with ASCII letters in lower case (every character keeps its place)."""
    return text.lower() if text.isascii() else text.translate(ASCII_LOWER)


Span = tuple[int, int, bool]  # start, end, whether the form found is base64/base32


@dataclass(frozen=True)
class _Redactor:
    exact: tuple[str, ...]  # forms of values shorter than FUZZY_MIN_CHARS, matched as written
    short: tuple[str, ...]  # folded forms shorter than a fragment, longest first
    fragments: frozenset[str]  # every FRAGMENT_CHARS-long run of the longer folded forms
    candidates: re.Pattern | None  # runs of text made only of characters the longer forms use
    encoded: frozenset[str]  # the forms and fragments that are base64 or base32
    halves: frozenset[str]  # every HALF-long run of the fragments

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where ``text`` shows a form of a secret: (start, end) pairs, in order, apart."""
        if not text:
            return []
        found = _found(text, self.exact, frozenset(), None, self.encoded) if self.exact else []
        squeezed = "".join(text.split())
        folded = fold(squeezed)
        spans = _found(folded, self.short, self.fragments, self.candidates, self.encoded, self.halves)
        if spans and len(squeezed) != len(text):  # back to the places of the characters in ``text``
            index = [i for i, c in enumerate(text) if not c.isspace()]
            spans = [(index[s], index[e - 1] + 1, encoded) for s, e, encoded in spans]
        found += spans
        if self.candidates is not None and self._separated_hex_in(folded):
            found += [(s, e, False) for s, e in _separated_hex(text, self.fragments)]
        return _extended(text, found) if found else []

    def _separated_hex_in(self, folded: str) -> bool:
        """Whether hex bytes with separators (``xxd``'s ``:``, ``\\x6b``, ``0x6b, 0x65``) spell a
        fragment: a cheap look before the exact search."""
        bare = folded.replace("\\x", "").replace("0x", "").translate(HEX_SEPARATORS)
        return any(run.group()[i:i + FRAGMENT_CHARS] in self.fragments
                   for run in HEX_RUN.finditer(bare) for i in range(len(run.group()) - FRAGMENT_CHARS + 1))

    def __call__(self, text: str) -> str:
        return apply_spans(text, self.spans(text))


def _found(text: str, whole: tuple[str, ...], fragments: frozenset[str], candidates: re.Pattern | None,
           encoded: frozenset[str], halves: frozenset[str] = frozenset()) -> list[Span]:
    found: list[Span] = []
    for form in whole:
        start = text.find(form)
        while start != -1:
            found.append((start, start + len(form), form in encoded))
            start = text.find(form, start + 1)
    if candidates is not None:
        # A fragment lies inside a run of its own characters: only such runs are looked at, and
        # in them only every HALF-th place, where a fragment's half would be; then the fragments
        # around a half found.
        for run in candidates.finditer(text):
            start, end = run.span()
            for i in range(start, end - HALF + 1, HALF):
                if text[i:i + HALF] not in halves:
                    continue
                for j in range(max(start, i - HALF), min(i, end - FRAGMENT_CHARS) + 1):
                    piece = text[j:j + FRAGMENT_CHARS]
                    if piece in fragments:
                        found.append((j, j + FRAGMENT_CHARS, piece in encoded))
    return found


def _separated_hex(text: str, fragments: frozenset[str]) -> list[tuple[int, int]]:
    """Hex bytes with separators (``od``, ``xxd``, ``\\x6b``, ``0x6b, 0x65``) that spell a fragment."""
    found = []
    for run in SEPARATED_HEX.finditer(text):
        digits = NOT_HEX_DIGIT.sub("", run.group()).lower()
        if any(digits[i:i + FRAGMENT_CHARS] in fragments for i in range(len(digits) - FRAGMENT_CHARS + 1)):
            found.append((run.start(), run.start() + len(run.group().rstrip(" \t:,.-"))))
    return found


def _merged(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end, encoded in sorted(spans):
        if out and start <= out[-1][1]:
            last = out[-1]
            out[-1] = (last[0], max(last[1], end), last[2] or encoded)
        else:
            out.append((start, end, encoded))
    return out


def _extended(text: str, found: list[Span]) -> list[tuple[int, int]]:
    """The spans found, joined; a base64/base32 one takes the up to 3 characters on either side
    made partly of the secret's bits, and the padding after it."""
    spans, done = [], 0
    for start, end, encoded in _merged(found):
        if encoded:
            start -= _b64_run(text[max(done, start - 3):start][::-1])
            end += _b64_run(text[end:end + 3])
            while end < len(text) and text[end] == "=":
                end += 1
        spans.append((start, end))
        done = end
    return [(s, e) for s, e, _ in _merged([(s, e, False) for s, e in spans])]


def apply_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with each (start, end) span replaced by ``***``."""
    out, done = [], 0
    for start, end in spans:
        out += [text[done:start], REDACTED]
        done = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _b64_run(chars: str) -> int:
    """How many of ``chars`` (from their start) are base64 characters."""
    n = 0
    while n < len(chars) and chars[n] in BASE64_CHARS:
        n += 1
    return n


@lru_cache(maxsize=32)
def _redactor(values: tuple[str, ...]) -> _Redactor:
    exact = set().union(*(secret_forms(v) for v in values if len(v) < FUZZY_MIN_CHARS))
    forms = set().union(*(secret_forms(v) for v in values if len(v) >= FUZZY_MIN_CHARS))
    short = sorted((f for f in forms if len(f) < FRAGMENT_CHARS), key=len, reverse=True)
    fragments = frozenset(f[i:i + FRAGMENT_CHARS] for f in forms if len(f) >= FRAGMENT_CHARS
                          for i in range(len(f) - FRAGMENT_CHARS + 1))
    chars = set("".join(fragments))
    candidates = re.compile(f"[{''.join(re.escape(c) for c in sorted(chars))}]{{{FRAGMENT_CHARS},}}") \
        if fragments else None
    encoded = set().union(*(encoded_forms(v) for v in values))
    encoded |= {fold(f) for f in encoded}
    encoded |= {f[i:i + FRAGMENT_CHARS] for f in encoded for i in range(len(f) - FRAGMENT_CHARS + 1)}
    halves = frozenset(f[i:i + HALF] for f in fragments for i in range(FRAGMENT_CHARS - HALF + 1))
    return _Redactor(tuple(sorted(exact, key=len, reverse=True)), tuple(short), fragments, candidates,
                     frozenset(encoded), halves)


def _held(secret_values: Iterable[str]) -> _Redactor:
    """The redactor of every secret this process holds, and of ``secret_values``."""
    extra = tuple(sorted({v for v in secret_values if v and len(v) >= MIN_SECRET_CHARS}))
    raw_env = getattr(os.environ, "_data", None)
    if raw_env is None:
        return _redactor(tuple(sorted(set(worker_secret_values()) | set(extra))))
    # Every stored line is redacted: what the worker holds is read again only when it changed
    # (its environment, the secrets file, a secret resolved for an agent).
    secrets_file = str(settings.DATA_DIR / "secrets.env")
    try:
        st = os.stat(secrets_file)
        file_key = (st.st_mtime_ns, st.st_size)
    except OSError:
        file_key = None
    if raw_env != _ENV_SEEN[0]:  # a dict comparison: cheaper than hashing the environment per line
        _ENV_SEEN[:] = [dict(raw_env), _ENV_SEEN[1] + 1]
    key = (_ENV_SEEN[1], secrets_file, file_key, len(_RESOLVED), settings.SECRET_KEY)
    return _held_redactor(key, extra)


_ENV_SEEN: list = [None, 0]  # the environment last seen by _held, and how many it has seen


def redact(text: str, secret_values: Iterable[str] = ()) -> str:
    """``text`` with every form of every secret this process holds (and of ``secret_values``)
    replaced by ``***``."""
    return _held(secret_values)(text) if text else text


def holds_secret(text: str, secret_values: Iterable[str] = ()) -> bool:
    """Whether ``text`` shows a form of a secret this process holds (or of ``secret_values``)."""
    return bool(text) and bool(_held(secret_values).spans(text))


def redact_lines(lines: Sequence[str], *, before: str = "", after: Sequence[str] = (),
                 secret_values: Iterable[str] = ()) -> list[str]:
    """Consecutive lines of one stream, redacted as one text, so that a secret split across
    them is found: ``before`` is the end of the stream's previous line (already stored) and
    ``after`` the lines that follow (stored later): they are read, not returned."""
    if not lines:
        return []
    head = [before[-TAIL_CHARS:]] if before else []
    joined = "\n".join([*head, *lines, *after])
    spans = _held(secret_values).spans(joined)
    out, pos = [], len(head[0]) + 1 if head else 0
    for line in lines:
        end = pos + len(line)
        out.append(apply_spans(line, [(max(s, pos) - pos, min(e, end) - pos) for s, e in spans
                                      if s < end and e > pos]))
        pos = end + 1
    return out


@lru_cache(maxsize=8)
def _held_redactor(_key: tuple, extra: tuple[str, ...]) -> _Redactor:
    return _redactor(tuple(sorted(set(worker_secret_values()) | set(extra))))


def redact_data(data, secret_values: Iterable[str] = ()):
    """``redact`` applied to every string (keys included) of a JSON-like structure."""
    values = tuple(secret_values)
    if isinstance(data, str):
        return redact(data, values)
    if isinstance(data, dict):
        return {redact_data(k, values): redact_data(v, values) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v, values) for v in data]
    return data


def fingerprint(text: str) -> str:
    """What audit metadata records instead of agent-written text: enough to match it against the
    commit or file it came from, nothing of its content."""
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]} ({len(text)} chars)"


class LogStream:
    """Lines on their way to a job's log, redacted as streams: each line is read with the end of
    the previous line of its stream and with the next one, so that a secret split across two
    lines is found in both. The last line of an agent's stream (``held``) waits up to
    ``hold_seconds`` for the line after it."""

    def __init__(self, held: tuple[str, ...] = ("agent", "stderr"), hold_seconds: float = 0.3):
        self.lines: list[tuple[float, object, str, str, bool]] = []  # (monotonic, ts, stream, text, activity)
        self.tails: dict[str, str] = {}  # stream → the end of its last line taken
        self.held, self.hold_seconds = held, hold_seconds

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, ts: object, stream: str, text: str, *, activity: bool = False) -> None:
        self.lines.append((time.monotonic(), ts, stream, text, activity))

    def take(self, secret_values: Iterable[str] = (), *, hold: bool = False) -> list[tuple[object, str, str, bool]]:
        """The lines to store now, redacted: (ts, stream, text, activity); with ``hold`` the last
        one stays if it is young and of an agent's stream."""
        lines, keep = self.lines, 0
        if hold and lines and lines[-1][2] in self.held and time.monotonic() - lines[-1][0] < self.hold_seconds:
            keep = 1
        taken, self.lines = lines[:len(lines) - keep], lines[len(lines) - keep:]
        values = tuple(secret_values)
        out: list[tuple[object, str, str, bool] | None] = [None] * len(taken)
        for stream in dict.fromkeys(line[2] for line in taken):
            places = [i for i, line in enumerate(taken) if line[2] == stream]
            texts = [taken[i][3] for i in places]
            after = [line[3] for line in self.lines if line[2] == stream]
            redacted = redact_lines(texts, before=self.tails.get(stream, ""), after=after, secret_values=values)
            for i, text in zip(places, redacted, strict=True):
                out[i] = (taken[i][1], stream, text, taken[i][4])
            self.tails[stream] = texts[-1][-TAIL_CHARS:]
        return [line for line in out if line is not None]
