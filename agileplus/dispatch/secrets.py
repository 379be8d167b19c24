"""The agent's environment: configured variables plus injected secrets, nothing else
from the worker. ``${{ secrets.NAME }}`` comes from the worker's environment
(``AGILEPLUS_SECRET_NAME`` or ``NAME``) or the secrets file.

Every secret this process holds (``worker_secret_values``) is redacted from whatever agent
output the farm stores (``redact``, ``redact_data``): plainly, reversed, hex (also with
separators, as `od` and `xxd` print it), base64 at every byte alignment (standard and URL-safe,
padded or not), URL-encoded, and any run of at least ``FRAGMENT_CHARS`` characters of one of
those forms (a secret split over lines, cut short, or wrapped in other text). Less than that of
a form on one line, or an encoding not listed here (rot13, one character per line), gets
through: redaction is the last line of defence; the first is that an agent gets only its own
secrets. Where agent text is not needed verbatim (audit metadata), record its
``fingerprint`` instead.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from django.conf import settings

from harnesses.base import LastingSetupError

SECRET_RE = re.compile(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BASE_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "LOGNAME", "SHELL")
REDACTED = "***"
# Shorter values are not redacted: they would blank ordinary words (and are no secret anyway).
MIN_SECRET_CHARS = 6
# A run this long of any form of a secret is redacted wherever it appears.
FRAGMENT_CHARS = 12
# Hex bytes with separators or prefixes between them (`od -tx1`, `xxd`, `\x6b\x65`, `0x6b, 0x65`):
# at least FRAGMENT_CHARS / 2 bytes in a row.
SEPARATED_HEX = re.compile(rf"(?<![0-9A-Fa-f])(?:\\x|0x)?[0-9A-Fa-f]{{2}}"
                           rf"(?:[ \t:,.\-]{{0,2}}(?:\\x|0x)?[0-9A-Fa-f]{{2}}){{{FRAGMENT_CHARS // 2 - 1},}}")
NOT_HEX_DIGIT = re.compile(r"\\x|0x|[^0-9A-Fa-f]")
BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
SECRET_PREFIX = "AGILEPLUS_SECRET_"
# The agent CLIs' own credentials, wherever the worker holds them (issue 12, item 5).
HARNESS_CREDENTIAL_NAMES = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY",
    "GEMINI_API_KEY", "GOOGLE_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK", "AZURE_OPENAI_API_KEY", "OPENROUTER_API_KEY", "MISTRAL_API_KEY",
    "DEEPSEEK_API_KEY", "GROQ_API_KEY", "XAI_API_KEY", "GITHUB_TOKEN", "GH_TOKEN",
)
# Any other variable whose name says it holds a credential.
CREDENTIAL_NAME_RE = re.compile(r"(?:API_?KEY|_TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|_CREDENTIALS?)$", re.I)
# Connection URLs whose password the worker holds (with any other `*_URL`, e.g. a proxy in
# ANTHROPIC_BASE_URL).
URL_NAMES = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "REDIS_URL", "NATS_URL")


@dataclass
class ResolvedEnvironment:
    env: dict[str, str] = field(default_factory=dict)
    secret_values: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def agent_base_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if source is None else source
    return {k: source[k] for k in BASE_NAMES if k in source}


def _secrets_file_values(path: Path, *, check_mode: bool = True) -> dict[str, str]:
    if not path.exists():
        return {}
    mode = path.stat().st_mode
    if check_mode and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LastingSetupError(f"secrets file {path} is readable by others: run `chmod 600 {path}`")
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def resolve_environment(
    configured: Mapping[str, str] | None,
    *,
    source_env: Mapping[str, str] | None = None,
    secrets_file: Path | None = None,
) -> ResolvedEnvironment:
    """The agent's configured environment with ``${{ secrets.NAME }}`` filled in. Each value
    resolved is remembered by this process, so it is redacted like the ones it holds."""
    source = os.environ if source_env is None else source_env
    file_values: dict[str, str] | None = None
    resolved = ResolvedEnvironment(names=sorted((configured or {}).keys()))
    for key, raw in (configured or {}).items():
        value = str(raw)

        def substitute(match: re.Match, key: str = key) -> str:
            nonlocal file_values
            name = match.group(1)
            found = source.get(f"AGILEPLUS_SECRET_{name}") or source.get(name)
            if found is None:
                if file_values is None:
                    file_values = _secrets_file_values(secrets_file or settings.DATA_DIR / "secrets.env")
                found = file_values.get(name)
            if found is None:
                raise LastingSetupError(
                    f"secret {name} (for {key}) is not set: export AGILEPLUS_SECRET_{name} on the worker "
                    f"or add {name}=… to {secrets_file or settings.DATA_DIR / 'secrets.env'} (chmod 600)"
                )
            resolved.secret_values.append(found)
            _RESOLVED.add(found)
            return found

        resolved.env[key] = SECRET_RE.sub(substitute, value)
    return resolved


# Every secret value this process has handed to an agent (a `${{ secrets.NAME }}` found under
# the plain name NAME is not recognisable by its name alone).
_RESOLVED: set[str] = set()


def worker_secret_values(source_env: Mapping[str, str] | None = None,
                         secrets_file: Path | None = None) -> list[str]:
    """Every secret value this worker process holds: each ``AGILEPLUS_SECRET_*``, each harness
    credential variable (``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``, ``AWS_SECRET_ACCESS_KEY``…) and
    any variable named like a credential, the passwords in the connection URLs, the values of the
    secrets file, the Django secret key, every secret resolved for an agent so far, and the
    harness credentials the worker passes (``AGILEPLUS_HARNESS_CREDENTIALS_*``: variables and
    credential files, agileplus/dispatch/sandboxing.py)."""
    from agileplus.dispatch.sandboxing import harness_credential_values

    values = set(_RESOLVED) | set(_env_values(os.environ if source_env is None else source_env))
    values.update(_cached_file_values(secrets_file or settings.DATA_DIR / "secrets.env"))
    values.update(harness_credential_values(None if source_env is None else dict(source_env)))
    values.add(getattr(settings, "SECRET_KEY", ""))
    return sorted(v for v in values if v and len(v) >= MIN_SECRET_CHARS)


def _env_values(source: Mapping[str, str]) -> tuple[str, ...]:
    values = []
    for name, value in source.items():
        if name.startswith(SECRET_PREFIX) or name in HARNESS_CREDENTIAL_NAMES or CREDENTIAL_NAME_RE.search(name):
            values.append(value)
        elif name in URL_NAMES or name.endswith("_URL"):
            values.append(_url_password(value))
    return tuple(values)


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def _cached_file_values(path: Path) -> tuple[str, ...]:
    try:
        st = path.stat()
    except OSError:
        return ()
    return _file_values_at(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _file_values_at(path: str, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    # Held even when the file's mode is wrong (a job refuses to resolve from it, but it is a secret).
    return tuple(_secrets_file_values(Path(path), check_mode=False).values())


def secret_forms(value: str) -> set[str]:
    """How an agent can print ``value`` so that a plain search misses it."""
    raw = value.encode()
    forms = {value, value[::-1], raw.hex(), raw.hex().upper(), raw[::-1].hex(), raw[::-1].hex().upper(),
             quote(value, safe=""), quote(value[::-1], safe="")} | base64_forms(value)
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


def base64_forms(value: str) -> set[str]:
    """The base64 characters that encode ``value`` (or its reverse) alone, wherever it starts in a
    3-byte group, standard and URL-safe alphabets."""
    raw, forms = value.encode(), set()
    for data in (raw, raw[::-1]):
        for offset in range(3):
            encoded = base64.b64encode(b"\0" * offset + data).decode().rstrip("=")
            # Keep the characters made of the value's bits alone (not the filler's, not what follows).
            first, last = -(-8 * offset // 6), 8 * (offset + len(data)) // 6
            core = encoded[first:last]
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


@dataclass(frozen=True)
class _Redactor:
    exact: tuple[str, ...]  # forms shorter than a fragment, longest first
    fragments: frozenset[str]  # every FRAGMENT_CHARS-long run of the longer forms
    candidates: re.Pattern | None  # runs of text made only of characters the longer forms use
    base64: frozenset[str]  # the exact forms and fragments that are base64

    def __call__(self, text: str) -> str:
        if not text:
            return text
        covered = bytearray(len(text))  # 1: part of a secret's form, 2: of a base64 form

        def cover(start: int, form: str) -> None:
            mark = 2 if form in self.base64 else 1
            for j in range(start, start + len(form)):
                covered[j] = max(covered[j], mark)

        for form in self.exact:
            start = text.find(form)
            while start != -1:
                cover(start, form)
                start = text.find(form, start + 1)
        if self.candidates is not None:
            # A fragment lies inside a run of its own characters: only such runs are looked at
            # (ordinary words are shorter than a fragment, so most lines cost one regex scan).
            for run in self.candidates.finditer(text):
                for i in range(run.start(), run.end() - FRAGMENT_CHARS + 1):
                    if text[i:i + FRAGMENT_CHARS] in self.fragments:
                        cover(i, text[i:i + FRAGMENT_CHARS])
        if self.candidates is not None:
            for run in SEPARATED_HEX.finditer(text):
                digits = NOT_HEX_DIGIT.sub("", run.group()).lower()
                if any(digits[i:i + FRAGMENT_CHARS] in self.fragments
                       for i in range(len(digits) - FRAGMENT_CHARS + 1)):
                    end = run.start() + len(run.group().rstrip(" \t:,.-"))  # not the separator after it
                    covered[run.start():end] = b"\1" * (end - run.start())
        if not any(covered):
            return text
        out, i, done = [], 0, 0
        while i < len(text):
            if not covered[i]:
                i += 1
                continue
            start, base64_form = i, False
            while i < len(text) and covered[i]:
                base64_form |= covered[i] == 2
                i += 1
            if base64_form:
                # Up to 3 characters on either side are made partly of the secret's bits (and then
                # comes the padding): they go too.
                start -= _b64_run(text[max(done, start - 3):start][::-1])
                i += _b64_run(text[i:i + 3])
                while i < len(text) and text[i] == "=":
                    i += 1
            out += [text[done:start], REDACTED]
            done = i
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
    forms = set().union(*(secret_forms(v) for v in values)) if values else set()
    short = sorted((f for f in forms if len(f) < FRAGMENT_CHARS), key=len, reverse=True)
    fragments = frozenset(f[i:i + FRAGMENT_CHARS] for f in forms if len(f) >= FRAGMENT_CHARS
                          for i in range(len(f) - FRAGMENT_CHARS + 1))
    chars = set("".join(fragments))
    candidates = re.compile(f"[{''.join(re.escape(c) for c in sorted(chars))}]{{{FRAGMENT_CHARS},}}") \
        if fragments else None
    base64_parts = set().union(*(base64_forms(v) for v in values)) if values else set()
    base64_parts |= {f[i:i + FRAGMENT_CHARS] for f in base64_parts for i in range(len(f) - FRAGMENT_CHARS + 1)}
    return _Redactor(tuple(short), fragments, candidates, frozenset(base64_parts))


def redact(text: str, secret_values: Iterable[str] = ()) -> str:
    """``text`` with every form of every secret this process holds (and of ``secret_values``)
    replaced by ``***``."""
    if not text:
        return text
    extra = tuple(sorted({v for v in secret_values if v and len(v) >= MIN_SECRET_CHARS}))
    raw_env = getattr(os.environ, "_data", None)
    if raw_env is None:
        return _redactor(tuple(sorted(set(worker_secret_values()) | set(extra))))(text)
    # Every stored line is redacted: what the worker holds is read again only when it changed
    # (its environment, the secrets file, a secret resolved for an agent).
    secrets_file = str(settings.DATA_DIR / "secrets.env")
    try:
        st = os.stat(secrets_file)
        file_key = (st.st_mtime_ns, st.st_size)
    except OSError:
        file_key = None
    key = (tuple(raw_env.items()), secrets_file, file_key, len(_RESOLVED), settings.SECRET_KEY)
    return _held_redactor(key, extra)(text)


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
