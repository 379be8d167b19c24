"""What redaction costs per stored line of agent output.

Figures: ``redact`` over typical 120-character log lines with the worker holding 8 secrets (every
form: plain, reversed, rot13, hex, base64 and base32 at each alignment, URL-encoded, 12-character
fragments, in any letter case and split by whitespace), the same over 8,000-character lines (the
longest a log line is stored), and 120-character lines taken as a job's log stream takes them
(``LogStream``: batches of 50, each line read with its neighbours); baseline: the
redaction it replaced (plain and base64 ``str.replace`` of the same 8 values) on the same lines.
Usage: .venv/bin/python bench/bench_redaction.py [--quick]
"""

from __future__ import annotations

import base64
import os
import random
import string
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["AGILEPLUS_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-redaction-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")

import django  # noqa: E402

django.setup()

from _common import Figure, emit, is_quick, timed  # noqa: E402

from agileplus.core.redaction import LogStream, redact  # noqa: E402

SECRETS = [f"sk-bench-{i}-" + "".join(random.Random(i).choices(string.ascii_letters + string.digits, k=32))
           for i in range(8)]


def previous_redact(text: str, values: list[str]) -> str:
    """The redaction before issue 12: the plain value and its base64, nothing else."""
    for value in values:
        for form in (value, base64.b64encode(value.encode()).decode()):
            text = text.replace(form, "***")
    return text


def lines(n: int, width: int) -> list[str]:
    rng = random.Random(7)
    words = ["Reading", "src/auth/login.py", "running", "pytest", "-q", "ok", "passed", "def", "return", "42"]
    out = []
    for _ in range(n):
        line = ""
        while len(line) < width:
            line += rng.choice(words) + " "
        out.append(line[:width])
    return out


def per_line_us(fn, sample: list[str]) -> float:
    with timed() as t:
        for line in sample:
            fn(line)
    return t.seconds / len(sample) * 1e6


def main() -> None:
    for i, value in enumerate(SECRETS):
        os.environ[f"AGILEPLUS_SECRET_BENCH_{i}"] = value
    n = 2_000 if is_quick() else 20_000
    figures = []
    for width, count in ((120, n), (8_000, n // 20)):
        sample = lines(count, width)
        redact(sample[0])  # build the cached forms once, as a worker does on its first line
        figures.append(Figure(f"redact, {width:,}-char line, 8 secrets held", per_line_us(redact, sample), "µs/line",
                              baseline="plain + base64 str.replace (before)",
                              baseline_value=per_line_us(lambda t: previous_redact(t, SECRETS), sample)))
    sample = lines(n, 120)
    figures.append(Figure("redact, 120-char lines as a log stream (batches of 50)", per_line_us(stream_batches, sample),
                          "µs/line", baseline="plain + base64 str.replace (before)",
                          baseline_value=per_line_us(lambda t: previous_redact(t, SECRETS), sample)))
    emit("redaction", figures)


def stream_batches(line: str, _stream: LogStream = LogStream()) -> None:
    """Add ``line`` to a job's log stream; every 50th line, take the batch (redacted)."""
    _stream.add(None, "agent", line)
    if len(_stream) >= 50:
        _stream.take()


if __name__ == "__main__":
    main()
