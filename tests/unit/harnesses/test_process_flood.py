"""An agent that floods its output cannot stretch its timeout or fill the worker's memory:
lines beyond the bounded queue are dropped with a counted marker, and what is queued when the
agent is stopped is handled only within the grace period."""

from __future__ import annotations

import os
import sys
import time

import pytest

from harnesses import process
from harnesses.process import AgentProcess

# Prints numbered lines as fast as it can, forever, and ignores SIGTERM.
FLOOD = ("import signal, sys\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ni = 0\n"
         "while True:\n    sys.stdout.write(f'line {i}\\n'); i += 1\n")


def _agent(tmp_path, script: str, *, timeout: float, grace: float = 1.0) -> AgentProcess:
    return AgentProcess([sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ),
                        timeout_seconds=timeout, grace_seconds=grace, tick_seconds=0.1)


def _slow_sink(seen: list[str], seconds_per_line: float = 0.001):
    def on_line(_stream: str, text: str):
        seen.append(text)
        time.sleep(seconds_per_line)  # storing a line is slower than the agent printing one
    return on_line


@pytest.mark.timeout(120)
def test_a_flooding_agent_is_stopped_within_its_timeout_and_grace(tmp_path):
    seen: list[str] = []
    started = time.monotonic()
    result = _agent(tmp_path, FLOOD, timeout=2, grace=1).run(_slow_sink(seen))
    elapsed = time.monotonic() - started
    assert result.stopped.kind == "timeout" and result.killed
    # timeout 2 s + grace 1 s (the drain of queued lines shares it); generous margin for a busy 2-core machine
    assert elapsed < 2 + 1 + 10


@pytest.mark.timeout(120)
def test_lines_that_do_not_fit_the_queue_are_dropped_with_a_counted_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(process, "MAX_QUEUED_LINES", 100)
    seen: list[str] = []
    _agent(tmp_path, FLOOD, timeout=2).run(_slow_sink(seen))
    markers = [line for line in seen if line.startswith("[agileplus:") and "dropped" in line]
    assert markers
    dropped = sum(int(line.split()[1]) for line in markers)
    numbered = [line for line in seen if line.startswith("line ")]
    last = int(numbered[-1].split()[1])
    # every line the agent printed up to the last one seen is either kept or counted as dropped
    assert len(numbered) + dropped >= last + 1


@pytest.mark.timeout(60)
def test_the_stop_lines_are_reported_even_during_a_flood(tmp_path):
    said: list[str] = []
    _agent(tmp_path, FLOOD, timeout=1).run(_slow_sink([]), on_stop=said.append)
    assert said[0].startswith("Stopping agent: timeout")
    assert "SIGKILL" in said[1]


@pytest.mark.timeout(60)
def test_a_quiet_agent_loses_no_line(tmp_path):
    seen: list[str] = []
    script = "for i in range(5000):\n    print(f'line {i}')\n"
    result = _agent(tmp_path, script, timeout=30).run(lambda _s, text: seen.append(text))
    assert result.exit_code == 0
    assert seen == [f"line {i}" for i in range(5000)]


def test_bytes_that_are_not_utf8_are_shown_escaped_not_replaced(tmp_path):
    lines: list[str] = []

    _agent(tmp_path, "import sys; sys.stdout.buffer.write(b'caf\\xe9 \\xff\\n')", timeout=30).run(
        lambda stream, text: lines.append(text) if stream == "stdout" else None)

    assert lines == ["caf\\xe9 \\xff"]
