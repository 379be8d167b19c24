"""Shared helpers for bench scripts and ``bench/run``.

In a bench script (run as ``python bench/bench_x.py``, so ``bench/`` is on ``sys.path``)::

    from _common import Figure, emit, is_quick, percentile, timed

    with timed() as t:
        work()
    emit("audit", [Figure("audit verify, 100,000 entries", 100_000 / t.seconds, "entries/s",
                          baseline="sha256 of the same bytes", baseline_value=..., note="aim >= 50,000/s")])

``emit`` prints the human table and then, as the last stdout line, ``BENCH-JSON {...}``
(the protocol of bench/README.md). ``bench/run`` runs every ``bench/bench_*.py``, reads
that line with ``parse_bench_json`` and prints one table with ``format_table``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

MARKER = "BENCH-JSON "
BENCH_DIR = Path(__file__).resolve().parent
NOT_REACHABLE = "not reachable"

# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Timer:
    seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Timer]:
    """``with timed() as t: ...``; ``t.seconds`` is the wall-clock time (perf_counter)."""
    timer = Timer()
    start = time.perf_counter()
    try:
        yield timer
    finally:
        timer.seconds = time.perf_counter() - start


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """count, mean, p50, p95, p99 and max of latency samples (same unit as given)."""
    return {
        "count": len(samples),
        "mean": sum(samples) / len(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "max": max(samples),
    }


def is_quick(argv: Sequence[str] | None = None) -> bool:
    """True when the script was started with --quick (bench/run --quick passes it on)."""
    return "--quick" in (sys.argv[1:] if argv is None else argv)


# --- the BENCH-JSON protocol ------------------------------------------------------------------


@dataclass
class Figure:
    what: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    unit_baseline: str = ""
    note: str = ""

    def ratio(self) -> float | None:
        """value / baseline_value when both are in the same unit, else None."""
        if self.baseline_value in (None, 0) or (self.unit_baseline and self.unit_baseline != self.unit):
            return None
        return self.value / self.baseline_value


@dataclass
class BenchResult:
    name: str
    figures: list[Figure] = field(default_factory=list)
    script: str = ""
    ok: bool = True
    error: str = ""
    seconds: float = 0.0


def figures_from_payload(payload: dict) -> list[Figure]:
    known = set(Figure.__dataclass_fields__)
    return [Figure(**{k: v for k, v in item.items() if k in known}) for item in payload.get("figures", [])]


def parse_bench_json(stdout: str) -> dict | None:
    """The payload of the last ``BENCH-JSON {...}`` line of ``stdout``, or None if there is none.

    Raises ValueError if that line is not a JSON object with a name and a list of figures."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            payload = json.loads(line[len(MARKER) :])
            if not isinstance(payload, dict) or "name" not in payload or not isinstance(payload.get("figures"), list):
                raise ValueError("BENCH-JSON needs an object with 'name' and a 'figures' list")
            for item in payload["figures"]:
                missing = {"what", "value", "unit"} - set(item)
                if missing:
                    raise ValueError(f"BENCH-JSON figure {item.get('what', '?')!r} lacks {sorted(missing)}")
            return payload
    return None


def emit(name: str, figures: Iterable[Figure], *, stream=None) -> None:
    """Print the figures as a table, then the BENCH-JSON line (last line of stdout)."""
    stream = stream or sys.stdout
    figures = list(figures)
    print(format_table([BenchResult(name, figures)]), file=stream)
    payload = {"name": name, "figures": [{k: v for k, v in asdict(f).items() if v not in ("", None)} for f in figures]}
    print(MARKER + json.dumps(payload), file=stream, flush=True)


# --- formatting -----------------------------------------------------------------------------------

COLUMNS = ["figure", "value", "unit", "baseline (what)", "baseline value", "ratio", "note"]


def format_number(value: float | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000 or (isinstance(value, int) and not isinstance(value, bool)):
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _rows(results: Iterable[BenchResult]) -> list[list[str]]:
    rows = []
    for result in results:
        if not result.ok:
            rows.append([f"{result.name}: FAILED", "—", "", "", "", "", result.error])
        for fig in result.figures:
            ratio = fig.ratio()
            baseline_value = format_number(fig.baseline_value)
            if fig.baseline_value is not None and fig.unit_baseline and fig.unit_baseline != fig.unit:
                baseline_value += f" {fig.unit_baseline}"
            rows.append([
                fig.what, format_number(fig.value), fig.unit, fig.baseline or "—", baseline_value,
                "—" if ratio is None else f"{ratio:.2f}×", fig.note,
            ])
    return rows


def format_table(results: Iterable[BenchResult], *, markdown: bool = False) -> str:
    rows = _rows(results)
    numeric = {1, 4, 5}
    if markdown:
        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        lines = ["| " + " | ".join(COLUMNS) + " |",
                 "|" + "|".join("---:" if i in numeric else "---" for i in range(len(COLUMNS))) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) if rows else len(COLUMNS[i])
              for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(COLUMNS), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# --- machine and service versions -----------------------------------------------------------


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for text in Path("/proc/meminfo").read_text().splitlines():
            if text.startswith("MemTotal:"):
                memory = f"{int(text.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count() or "?"), "memory": memory,
            "os": f"{platform.system()} {platform.release()}"}


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _url(env_names: Sequence[str], schemes: Sequence[str], default: str) -> str:
    for name in env_names:
        value = os.environ.get(name, "")
        if value and urlparse(value).scheme in schemes:
            return value
    return default


def postgres_version(url: str, timeout: float = 3.0) -> str:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=int(timeout)) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]
    except Exception:  # noqa: BLE001 - any failure means "not reachable" in a report header
        return NOT_REACHABLE


def redis_version(url: str, timeout: float = 3.0) -> str:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    except Exception:  # noqa: BLE001
        return NOT_REACHABLE


def nats_version(url: str, timeout: float = 3.0) -> str:
    """The server's version from the INFO line NATS sends to every new connection."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = b""
            while b"\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        line = data.split(b"\r\n", 1)[0].decode()
        if not line.startswith("INFO "):
            return NOT_REACHABLE
        info = json.loads(line[5:])
        return str(info.get("version", "?")) + (" (JetStream)" if info.get("jetstream") else "")
    except (OSError, ValueError):
        return NOT_REACHABLE


def versions() -> dict[str, str]:
    """Python, Django, Celery, and the live PostgreSQL, Redis and NATS servers' versions."""
    pg = _url(["DATABASE_URL", "AGILEPLUS_TEST_POSTGRES_URL"], ["postgres", "postgresql"],
              "postgres://postgres@127.0.0.1:5432/postgres")
    rd = _url(["CELERY_BROKER_URL", "AGILEPLUS_TEST_REDIS_URL"], ["redis", "rediss"], "redis://127.0.0.1:6379/0")
    nt = _url(["NATS_URL", "AGILEPLUS_TEST_NATS_URL"], ["nats"], "nats://127.0.0.1:4222")
    return {
        "Python": platform.python_version(),
        "Django": _package_version("Django"),
        "Celery": _package_version("celery"),
        "PostgreSQL": postgres_version(pg),
        "Redis": redis_version(rd),
        "NATS server": nats_version(nt),
    }


def format_header(machine: dict[str, str], vers: dict[str, str], *, markdown: bool = False) -> str:
    first = f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']} memory ({machine['os']})"
    second = ", ".join(f"{name} {version}" for name, version in vers.items())
    if markdown:
        return f"{first}  \n{second}"
    return f"{first}\n{second}"


# --- bench/run ------------------------------------------------------------------------------------


def discover(bench_dir: Path = BENCH_DIR, only: Sequence[str] = ()) -> list[Path]:
    scripts = sorted(bench_dir.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(word in s.stem for word in only)]
    return scripts


def run_script(script: Path, *, quick: bool, timeout: float, python: str = sys.executable) -> BenchResult:
    argv = [python, str(script), *(["--quick"] if quick else [])]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=script.parent.parent)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the script stops the workers and drops the scratch database it started
        proc.terminate()
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        return BenchResult(script.stem, script=script.name, ok=False, error=f"timed out after {timeout:g}s",
                           seconds=time.monotonic() - started)
    seconds = time.monotonic() - started
    try:
        payload = parse_bench_json(stdout)
    except ValueError as exc:
        return BenchResult(script.stem, script=script.name, ok=False, error=f"bad BENCH-JSON: {exc}", seconds=seconds)
    figures = figures_from_payload(payload) if payload else []
    name = payload["name"] if payload else script.stem
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return BenchResult(name, figures, script.name, ok=False, error=f"exit {proc.returncode}: {last}",
                           seconds=seconds)
    if payload is None:
        return BenchResult(name, script=script.name, ok=False, error="no BENCH-JSON line on stdout", seconds=seconds)
    return BenchResult(name, figures, script.name, seconds=seconds)


def run_all(argv: Sequence[str] | None = None, *, bench_dir: Path = BENCH_DIR, out=None, err=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description="Run every bench/bench_*.py and print one table.")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (README)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per script (default 1800)")
    parser.add_argument("only", nargs="*", help="run only scripts whose name contains one of these words")
    args = parser.parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr

    scripts = discover(bench_dir, args.only)
    if not scripts:
        print(f"bench/run: no bench_*.py in {bench_dir}" + (f" matching {args.only}" if args.only else ""), file=err)
        return 1
    results = []
    for script in scripts:
        print(f"==> {script.name}{' --quick' if args.quick else ''}", file=err, flush=True)
        result = run_script(script, quick=args.quick, timeout=args.timeout)
        status = "ok" if result.ok else f"FAILED ({result.error})"
        print(f"    {status} in {result.seconds:.1f}s", file=err, flush=True)
        results.append(result)

    print(format_header(machine_info(), versions(), markdown=args.markdown), file=out)
    print(file=out)
    print(format_table(results, markdown=args.markdown), file=out)
    failed = [r.script for r in results if not r.ok]
    if failed:
        print(f"\n{len(failed)} of {len(results)} bench scripts failed: {', '.join(failed)}", file=err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_all())
