"""A scratch farm for benchmarks: its own data folder and database (SQLite file or a PostgreSQL
scratch database), migrated, with Django set up. Import this before anything from agileplus."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN_URL = os.environ.get("AGILEPLUS_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AGILEPLUS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def implement_all(feature_slug: str, env: dict[str, str], *,
                  timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """``agileplus implement FEATURE --all --wait`` as a person runs it, and its wall time (s)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "agileplus", "implement", feature_slug, "--all", "--wait",
                           "--actor", "human:bench"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return done, time.perf_counter() - start


def _pg(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def setup(name: str, *, database: str = "sqlite", broker: str = "embedded") -> Path:
    """Environment for this process and the workers it starts; returns the scratch folder."""
    # A terminated bench (bench/run's timeout, Ctrl-C) unwinds: workers it started stop, scratch goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = Path(tempfile.mkdtemp(prefix=f"ap-bench-{name}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["AGILEPLUS_DATA_DIR"] = str(folder / "data")
    os.environ["AGILEPLUS_BROKER_DIR"] = str(folder / "broker")
    # Agents run sandboxed: the scripted test agents are mounted read-only, as in tests/conftest.py.
    os.environ.setdefault("AGILEPLUS_SANDBOX_READONLY", str(ROOT / "tests" / "support" / "agents"))
    if database == "postgres":
        db = f"bench_ap_{name}"
        _pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        _pg(f'CREATE DATABASE "{db}"')
        atexit.register(_pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        os.environ["DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db}"
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    if broker == "redis":
        os.environ["CELERY_BROKER_URL"] = REDIS_URL
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
    else:
        os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return folder


def bench_wp():
    """Project ``bench``, its feature ``001-bench`` and that feature's WP01: what a bench that
    needs one work package writes its records against (after ``setup``)."""
    from agileplus.features.models import Feature, Project, WorkPackage

    project = Project.objects.create(name="bench", repo_url="/tmp/bench")
    feature = Feature.objects.create(project=project, slug="001-bench", number=1, title="bench")
    return WorkPackage.objects.create(feature=feature, code="WP01", title="bench")


def service_reachable(url: str) -> bool:
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or {"redis": 6379, "postgres": 5432,
                                                                   "nats": 4222}.get(parsed.scheme, 0)), 1).close()
        return True
    except OSError:
        return False


def percentiles(samples: list[float]) -> tuple[float, float]:
    from _common import percentile

    return percentile(samples, 50), percentile(samples, 95)


def bed_setup(name: str) -> Path | None:
    """A scratch folder and Django (no database of its own) for a bench on the multi-host bed
    (tests/support/multihost.py); None, after saying why and emitting no figure, without root."""
    if os.geteuid() != 0:
        from _common import emit

        print("skipped: the multi-host bed needs root (ip netns)")
        emit(name, [])
        return None
    folder = Path(tempfile.mkdtemp(prefix=f"ap-bench-{name}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ.update(AGILEPLUS_DATA_DIR=str(folder / "data"), DJANGO_SETTINGS_MODULE="agileplus.settings")
    os.environ.pop("DATABASE_URL", None)  # the bed brings its own PostgreSQL
    import django

    django.setup()
    return folder
