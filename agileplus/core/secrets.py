"""The agent's environment and the secrets a worker holds: configured variables plus injected
secrets, nothing else from the worker. ``${{ secrets.NAME }}`` comes from the worker's environment
(``AGILEPLUS_SECRET_NAME`` or ``NAME``) or the secrets file. This module owns what counts as a
secret (``worker_secret_values``: the ``AGILEPLUS_SECRET_*`` variables, credential-named variables,
connection URL passwords, the secrets file, every value resolved for an agent, and the harness
credentials a worker passes: ``harness_credentials``); ``agileplus.core.redaction`` removes them
from whatever the farm stores. In core because every layer redacts (audit, events, dispatch, review).

Harness credentials: each worker names, per harness, the environment variables and credential
files it passes to that harness's sandbox, read from the worker's own environment and home:
``AGILEPLUS_HARNESS_CREDENTIALS_<HARNESS>`` (e.g. ``AGILEPLUS_HARNESS_CREDENTIALS_CLAUDE_CODE=
ANTHROPIC_API_KEY,ANTHROPIC_BASE_URL,~/.claude/.credentials.json``); without it, the defaults in
the adapter's ``credential_env`` and ``credential_files``. They never reach the database, events,
logs or prompts: only the names of the ones present are announced.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from harnesses.base import HarnessError, LastingSetupError
from harnesses.registry import adapter_names, get_adapter
from harnesses.sandbox import SANDBOX_HOME

SECRET_RE = re.compile(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BASE_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "LOGNAME", "SHELL")
# Shorter values are not redacted: they would blank ordinary words (and are no secret anyway).
MIN_SECRET_CHARS = 6
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
    credential files, ``harness_credentials`` below)."""
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


CREDENTIALS_ENV = "AGILEPLUS_HARNESS_CREDENTIALS_{}"
# Values of these are not secret, but they still stay out of logs through redaction.
NOT_SECRET = {"ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_BASE", "AWS_REGION", "AWS_PROFILE",
              "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "GOOGLE_CLOUD_PROJECT", "GOOGLE_GENAI_USE_VERTEXAI",
              "CODEX_HOME", "GOOGLE_GEMINI_BASE_URL"}


@dataclass
class HarnessCredentials:
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # path inside the sandbox → worker's file
    missing: list[str] = field(default_factory=list)

    def secret_values(self) -> list[str]:
        """The values to redact: the variables' (but base URLs, regions…) and the files' contents."""
        values = [v for k, v in self.env.items() if k not in NOT_SECRET]
        for host in self.files.values():
            with contextlib.suppress(OSError):
                values.append(host.read_text(errors="replace").strip())
        return [v for v in values if len(v) >= 4]

    @property
    def present(self) -> list[str]:
        return sorted(self.env) + sorted(f"~/{Path(inside).relative_to(SANDBOX_HOME)}" for inside in self.files)


def credential_names(harness: str, source: dict[str, str] | None = None) -> list[str]:
    source = os.environ if source is None else source
    configured = source.get(CREDENTIALS_ENV.format(harness.upper().replace("-", "_")))
    if configured is not None:
        return [n.strip() for n in configured.split(",") if n.strip()]
    try:
        adapter = get_adapter(harness)
    except HarnessError:
        return []
    return [*adapter.credential_env, *adapter.credential_files]


def harness_credentials(harness: str, source: dict[str, str] | None = None,
                        home: Path | None = None) -> HarnessCredentials:
    """The credentials this worker holds for ``harness``, from its own environment and home."""
    source = os.environ if source is None else source
    home = home or Path(source.get("HOME") or Path.home())
    found = HarnessCredentials()
    for name in credential_names(harness, source):
        if name.startswith(("~/", "/")):
            host = home / name[2:] if name.startswith("~/") else Path(name)
            inside = f"{SANDBOX_HOME}/{name[2:]}" if name.startswith("~/") else name
            if host.is_file():
                found.files[inside] = host
            else:
                found.missing.append(name)
        elif source.get(name):
            found.env[name] = source[name]
        else:
            found.missing.append(name)
    return found


def harness_credential_values(source: dict[str, str] | None = None) -> list[str]:
    """The values of every harness credential this worker passes (variables and file contents):
    ``worker_secret_values`` adds them to what is redacted."""
    values: list[str] = []
    for harness in adapter_names():
        values += harness_credentials(harness, source).secret_values()
    return sorted(set(values))
