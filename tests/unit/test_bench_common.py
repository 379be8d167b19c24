"""bench/_common.py: the BENCH-JSON protocol, percentiles, the one table of bench/run."""

from __future__ import annotations

import importlib.util
import io
import json
import socket
import sys
import textwrap
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "_common.py")
common = importlib.util.module_from_spec(_spec)
sys.modules["bench_common"] = common
_spec.loader.exec_module(common)


def _payload(**figure) -> dict:
    return {"name": "audit", "figures": [{"what": "verify", "value": 2.0, "unit": "entries/s", **figure}]}


def test_parse_takes_the_last_bench_json_line():
    stdout = "table\nBENCH-JSON {\"name\": \"old\", \"figures\": []}\nmore\nBENCH-JSON " + json.dumps(_payload()) + "\n"
    assert common.parse_bench_json(stdout)["name"] == "audit"


def test_parse_returns_none_without_a_bench_json_line():
    assert common.parse_bench_json("just a table\n") is None


@pytest.mark.parametrize("line", ['BENCH-JSON {"figures": []}', 'BENCH-JSON {"name": "x", "figures": [{"what": "a"}]}',
                                  "BENCH-JSON [1]"])
def test_parse_rejects_payloads_that_break_the_protocol(line):
    with pytest.raises(ValueError):
        common.parse_bench_json(line)


def test_emit_prints_a_table_then_a_bench_json_line_that_parses_back():
    out = io.StringIO()
    figure = common.Figure("verify", 81234.5, "entries/s", "sha256 only", 1_200_000.0, "entries/s", "aim")
    common.emit("audit", [figure], stream=out)
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("BENCH-JSON ")
    assert "verify" in lines[2]
    payload = common.parse_bench_json(out.getvalue())
    assert payload["figures"][0] == {"what": "verify", "value": 81234.5, "unit": "entries/s", "baseline": "sha256 only",
                                     "baseline_value": 1_200_000.0, "unit_baseline": "entries/s", "note": "aim"}


@pytest.mark.parametrize(("p", "expected"), [(0, 1.0), (50, 5.5), (90, 9.1), (100, 10.0)])
def test_percentile_interpolates_between_ranks(p, expected):
    assert common.percentile([float(v) for v in range(10, 0, -1)], p) == pytest.approx(expected)


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        common.percentile([], 50)


def test_ratio_only_between_figures_of_the_same_unit():
    assert common.Figure("a", 10.0, "ms", "b", 4.0).ratio() == 2.5
    assert common.Figure("a", 10.0, "ms", "b", 4.0, "s").ratio() is None
    assert common.Figure("a", 10.0, "ms", "b", 0.0).ratio() is None
    assert common.Figure("a", 10.0, "ms").ratio() is None


def test_table_shows_every_column_and_the_ratio():
    figures = common.figures_from_payload(_payload(baseline="sha256", baseline_value=1.0, note="aim"))
    result = common.BenchResult("audit", figures)
    text = common.format_table([result])
    header, _rule, row = text.splitlines()
    assert header.split()[:3] == ["figure", "value", "unit"] and "ratio" in header and "note" in header
    assert "verify" in row and "2.00×" in row and "sha256" in row and "aim" in row


def test_markdown_table_has_a_header_rule_and_escapes_pipes():
    result = common.BenchResult("x", [common.Figure("a | b", 3.0, "ops/s")])
    lines = common.format_table([result], markdown=True).splitlines()
    assert lines[0].startswith("| figure | value | unit |")
    assert set(lines[1]) <= set("|-:")
    assert "a \\| b" in lines[2]


def test_a_failed_script_gets_a_row_that_says_so():
    text = common.format_table([common.BenchResult("bench_x", ok=False, error="exit 1: boom")])
    assert "bench_x: FAILED" in text and "exit 1: boom" in text


def test_nats_version_is_read_from_the_server_info_line():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        conn, _ = listener.accept()
        conn.sendall(b'INFO {"server_id":"x","version":"2.15.1","jetstream":true}\r\n')
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        assert common.nats_version(f"nats://127.0.0.1:{listener.getsockname()[1]}") == "2.15.1 (JetStream)"
    finally:
        listener.close()


def test_unreachable_services_say_so():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert common.nats_version(f"nats://127.0.0.1:{port}", timeout=1) == "not reachable"
    assert common.redis_version(f"redis://127.0.0.1:{port}/0", timeout=1) == "not reachable"
    assert common.postgres_version(f"postgres://x@127.0.0.1:{port}/x", timeout=1) == "not reachable"


def _write(bench_dir: Path, name: str, body: str) -> None:
    (bench_dir / name).write_text(textwrap.dedent(body))


def test_run_all_prints_one_table_and_fails_if_a_script_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "versions", lambda: {"Python": "3", "PostgreSQL": "not reachable"})
    _write(tmp_path, "bench_good.py", """
        import json, sys
        quick = "--quick" in sys.argv
        print("BENCH-JSON " + json.dumps({"name": "good", "figures": [
            {"what": "quick" if quick else "full", "value": 6.0, "unit": "ops/s", "baseline": "base",
             "baseline_value": 3.0}]}))
    """)
    _write(tmp_path, "bench_crash.py", "import sys\nprint('partial')\nsys.exit('boom')\n")
    _write(tmp_path, "bench_silent.py", "print('no protocol line')\n")
    _write(tmp_path, "helper.py", "raise SystemExit('not a bench script: never run')\n")
    out, err = io.StringIO(), io.StringIO()
    code = common.run_all(["--quick"], bench_dir=tmp_path, out=out, err=err)
    text = out.getvalue()
    assert code == 1
    assert text.startswith("Machine: ") and "PostgreSQL not reachable" in text
    assert "quick" in text and "2.00×" in text
    assert "bench_crash: FAILED" in text and "boom" in text
    assert "bench_silent: FAILED" in text and "no BENCH-JSON line" in text
    assert "2 of 3 bench scripts failed" in err.getvalue()


def test_run_all_succeeds_and_prints_markdown(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "versions", lambda: {"Python": "3"})
    _write(tmp_path, "bench_one.py", """
        import json
        print("BENCH-JSON " + json.dumps({"name": "one", "figures": [{"what": "w", "value": 1, "unit": "u"}]}))
    """)
    out = io.StringIO()
    assert common.run_all(["--markdown"], bench_dir=tmp_path, out=out, err=io.StringIO()) == 0
    assert "| w | 1 | u |" in out.getvalue()
