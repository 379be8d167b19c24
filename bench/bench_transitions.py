"""Transition + audit entry + outbox event append rate, SQLite and PostgreSQL, 1 and 8 writer processes.

Each writer process moves its own feature's WP planned ⇄ blocked through transition_wp
(one row lock, one audit entry, one event, one transaction per move). Baseline: the same
processes doing plain one-row INSERT transactions of the same size (no lock, no hash).
PostgreSQL uses a scratch database ``bench_ap_core`` (created and dropped here).
Usage: .venv/bin/python bench/bench_transitions.py [--quick]
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN_URL = os.environ.get("AGILEPLUS_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DB = "bench_ap_core"
WRITERS = (1, 8)
ROW = "x" * 420  # about the size of one audit row plus its event


def _django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")
    import django

    django.setup()


def setup_database(writers: int) -> None:
    _django()
    from django.core.management import call_command
    from django.db import connection

    from agileplus.features.models import Feature, Project, WorkPackage

    call_command("migrate", verbosity=0)
    project = Project.objects.create(name="bench", repo_url="/tmp/bench")
    for i in range(1, writers + 1):
        feature = Feature.objects.create(project=project, slug=f"{i:03d}-bench", number=i, title="bench")
        WorkPackage.objects.create(feature=feature, code="WP01", title="bench")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, writer INTEGER, payload TEXT)"
                       if connection.vendor == "sqlite" else
                       "CREATE TABLE bench_rows (id BIGSERIAL PRIMARY KEY, writer INTEGER, payload TEXT)")


def writer(index: int, ops: int, mode: str, barrier, results) -> None:
    _django()
    from django.db import connection, transaction

    from agileplus.features.models import WorkPackage
    from agileplus.features.services import transition_wp

    wp = WorkPackage.objects.get(feature__number=index)
    barrier.wait()
    start = time.perf_counter()
    for i in range(ops):
        if mode == "transition":
            transition_wp(wp, "blocked" if i % 2 == 0 else "planned", actor="agent:bench")
        else:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("INSERT INTO bench_rows (writer, payload) VALUES (%s, %s)", [index, ROW])
    results.put((start, time.perf_counter()))


def run(backend_env: dict, processes: int, ops: int, mode: str) -> float:
    os.environ.update(backend_env)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(i + 1, ops, mode, barrier, results)) for i in range(processes)]
    for p in procs:
        p.start()
    spans = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"writer failed with exit code {p.exitcode}")
    elapsed = max(e for _, e in spans) - min(s for s, _ in spans)
    return round(processes * ops / elapsed, 1)


def _fresh(backend: str) -> dict:
    if backend == "sqlite":
        return {"AGILEPLUS_DATA_DIR": tempfile.mkdtemp(prefix="bench-tr-"), "DATABASE_URL": ""}
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    return {"AGILEPLUS_DATA_DIR": tempfile.mkdtemp(prefix="bench-tr-"),
            "DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DB}


def _pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN_URL, connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001 - absent server: skip the PostgreSQL rows
        return False


def main() -> None:
    ops = 40 if "--quick" in sys.argv else 250
    figures = []
    backends = ["sqlite"] + (["postgresql"] if _pg_available() else [])
    for backend in backends:
        for processes in WRITERS:
            env = _fresh(backend)
            child_env = {k: v for k, v in {**os.environ, **env}.items() if v != ""}
            if not env["DATABASE_URL"]:
                child_env.pop("DATABASE_URL", None)
            subprocess.run([sys.executable, __file__, "--setup", str(max(WRITERS))], env=child_env, check=True)
            os.environ.pop("DATABASE_URL", None)
            rate = run({k: v for k, v in env.items() if v}, processes, ops, "transition")
            base = run({k: v for k, v in env.items() if v}, processes, ops, "insert")
            figures.append({"what": f"transition+audit+event, {backend}, {processes} writer process(es)",
                            "value": rate, "unit": "transitions/s",
                            "baseline": "plain one-row INSERT transactions, same processes",
                            "baseline_value": base, "unit_baseline": "rows/s"})
    if "postgresql" not in backends:
        print(f"PostgreSQL not reachable at {PG_ADMIN_URL}: its rows are missing")
    else:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
    print(f"{'what':60} {'per s':>10} {'baseline':>10}")
    for f in figures:
        print(f"{f['what']:60} {f['value']:>10,.0f} {f['baseline_value']:>10,.0f}")
    print("BENCH-JSON " + json.dumps({"name": "transitions", "figures": figures}))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--setup":
        setup_database(int(sys.argv[2]))
    else:
        main()
