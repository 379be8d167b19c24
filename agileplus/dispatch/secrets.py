"""The agent's environment: configured variables plus injected secrets, nothing else
from the worker. ``${{ secrets.NAME }}`` comes from the worker's environment
(``AGILEPLUS_SECRET_NAME`` or ``NAME``) or the secrets file; values are redacted from
every log line the worker stores."""

from __future__ import annotations

import base64
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from harnesses.base import HarnessError

SECRET_RE = re.compile(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BASE_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "LOGNAME", "SHELL")
REDACTED = "***"


@dataclass
class ResolvedEnvironment:
    env: dict[str, str] = field(default_factory=dict)
    secret_values: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def agent_base_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if source is None else source
    return {k: source[k] for k in BASE_NAMES if k in source}


def _secrets_file_values(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HarnessError(f"secrets file {path} is readable by others: run `chmod 600 {path}`")
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
                raise HarnessError(
                    f"secret {name} (for {key}) is not set: export AGILEPLUS_SECRET_{name} on the worker "
                    f"or add {name}=… to {secrets_file or settings.DATA_DIR / 'secrets.env'} (chmod 600)"
                )
            resolved.secret_values.append(found)
            return found

        resolved.env[key] = SECRET_RE.sub(substitute, value)
    return resolved


def redact(text: str, secret_values: list[str]) -> str:
    for value in secret_values:
        if len(value) < 4:
            continue
        for form in (value, base64.b64encode(value.encode()).decode()):
            text = text.replace(form, REDACTED)
    return text
