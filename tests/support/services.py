"""Real services for integration tests: found on loopback, or the test fails in CI
(``CI=true``) and is skipped with the reason printed elsewhere."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

DEFAULT_URLS = {
    "postgres": "postgres://postgres@127.0.0.1:5432/postgres",
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
ENV_NAMES = {
    "postgres": "AGILEPLUS_TEST_POSTGRES_URL",
    "redis": "AGILEPLUS_TEST_REDIS_URL",
    "nats": "AGILEPLUS_TEST_NATS_URL",
    "rabbitmq": "AGILEPLUS_TEST_RABBITMQ_URL",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_url(name: str) -> str:
    return os.environ.get(ENV_NAMES[name], DEFAULT_URLS[name])


def reachable(url: str, timeout: float = 0.5) -> bool:
    parsed = urlparse(url)
    default_ports = {"postgres": 5432, "postgresql": 5432, "redis": 6379, "nats": 4222, "amqp": 5672}
    port = parsed.port or default_ports.get(parsed.scheme, 0)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str) -> str:
    """The service's URL, or fail (CI) / skip (elsewhere) naming what is missing."""
    url = service_url(name)
    if reachable(url):
        return url
    reason = f"{name} is not reachable at {url} (set {ENV_NAMES[name]} to point at one)"
    if in_ci():
        pytest.fail(f"CI needs {reason}")
    pytest.skip(reason)
