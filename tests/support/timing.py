"""Where the suite's time goes: the slowest tests (set-up + call + tear-down), the time per test
folder, and the time spent in set-ups.

Registered from tests/conftest.py. ``--slowest N`` prints the tables at the end of a run;
``--timing-file PATH`` appends each test's times to PATH (one JSON line per test), and
``python -m tests.support.timing N PATH…`` prints the tables of those files together (how
./scripts/test reports a pass made of a parallel and a serial pytest run). Under pytest-xdist every
worker's reports reach the controller, which records them; folder times are summed over the test
processes (test time, not wall time: with ``-n 4`` they add up to about four times the wall time).
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

# Folders whose sub-folders are reported one by one (tests/integration/api, tests/unit/harnesses, …).
SPLIT = ("tests/integration", "tests/unit")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agileplus timing")
    group.addoption("--slowest", type=int, default=0, metavar="N",
                    help="at the end: the N slowest tests, the time per test folder and the total set-up time")
    group.addoption("--timing-file", default=None, metavar="PATH", help="append each test's times to PATH (JSON lines)")


def pytest_configure(config: pytest.Config) -> None:
    wanted = config.getoption("slowest") or config.getoption("timing_file")
    if wanted and not hasattr(config, "workerinput"):
        config.pluginmanager.register(Timing(config.getoption("slowest"), config.getoption("timing_file")),
                                      "agileplus-timing")


def folder_of(nodeid: str) -> str:
    """``tests/integration/api/test_x.py::t`` → ``tests/integration/api``; ``tests/faults/test_y.py::t``
    → ``tests/faults``; ``tests/unit/test_z.py::t`` → ``tests/unit``."""
    parts = nodeid.split("::", 1)[0].split("/")[:-1]
    depth = 3 if "/".join(parts[:2]) in SPLIT else 2
    return "/".join(parts[:depth]) or "."


class Timing:
    def __init__(self, count: int, path: str | None):
        self.count, self.path = count, path
        self.started = time.monotonic()
        self.phases: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.phases[report.nodeid][report.when] += report.duration

    def pytest_sessionfinish(self) -> None:
        if self.path and self.phases:
            with Path(self.path).open("a") as out:
                for nodeid, phases in self.phases.items():
                    out.write(json.dumps({"nodeid": nodeid, **phases}) + "\n")

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.count and self.phases:
            report(self.phases, self.count, terminalreporter.section, terminalreporter.write_line)
            terminalreporter.write_line(f"wall {time.monotonic() - self.started:.1f}s")


def report(phases: dict[str, dict[str, float]], count: int, section: Callable[[str], object],
           write: Callable[[str], object]) -> None:
    totals = {nodeid: sum(times.values()) for nodeid, times in phases.items()}
    section(f"{count} slowest tests (set-up + call + tear-down)")
    for nodeid, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:count]:
        write(f"{seconds:8.1f}s  {nodeid}")
    folders: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for nodeid, seconds in totals.items():
        folders[folder_of(nodeid)][0] += 1
        folders[folder_of(nodeid)][1] += seconds
    section("time per test folder (summed over test processes)")
    for folder, (tests, seconds) in sorted(folders.items(), key=lambda kv: -kv[1][1]):
        write(f"{seconds:8.1f}s  {tests:5d} tests  {folder}")
    setups = sum(times.get("setup", 0.0) for times in phases.values())
    write(f"{sum(totals.values()):8.1f}s  {len(totals):5d} tests  all, of which set-ups (fixtures, databases) "
          f"{setups:.1f}s")


def main(argv: list[str]) -> int:
    count, paths = int(argv[0]), argv[1:]
    phases: dict[str, dict[str, float]] = {}
    for path in paths:
        if Path(path).exists():
            for line in Path(path).read_text().splitlines():
                entry = json.loads(line)
                phases[entry.pop("nodeid")] = entry
    if phases:
        report(phases, count, lambda title: print(f"{'-' * 20} {title} {'-' * 20}"), print)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
