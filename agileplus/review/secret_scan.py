"""Secret scan of a diff: known token formats and high-entropy values assigned to secret-like names.

Run on every line an agent's commits add (base..head) and on every commit message. A value this
process holds as a secret (``worker_secret_values``), in any form ``redact`` knows, is a finding
too. A finding blocks the WP like any other governance violation; it names the file and line (or
the commit and a fingerprint of its message) and the kind, never the value.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from agileplus.core.redaction import holds_secret
from harnesses.git import git, log_fields

PATTERNS: list[tuple[str, re.Pattern]] = [
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b")),
    ("AWS secret access key", re.compile(r"(?i)aws.{0,20}?(?:secret|key).{0,5}?['\"=:\s]+[A-Za-z0-9/+]{40}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("private key", re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY( BLOCK)?-----")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("Anthropic API key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{20,}\b")),
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{32,}\b")),
    ("Stripe live key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{20,}\b")),
]
# `password = "…"`, `API_TOKEN: …`: a long, random-looking value bound to a secret-like name.
ASSIGNMENT = re.compile(
    r"(?i)(?:secret|token|passw(?:or)?d|api[_-]?key|private[_-]?key|credential)[A-Za-z0-9_\-]*\s*[:=]\s*"
    r"['\"]?([A-Za-z0-9+/=_\-.]{20,})['\"]?"
)
ENTROPY_BITS = 4.0
HELD = "secret value held by the farm"


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


@dataclass
class Finding:
    path: str
    line: int
    kind: str

    def describe(self) -> str:
        return f"{self.path}:{self.line} adds what looks like a {self.kind}"


def secret_kind(text: str) -> str | None:
    """What kind of secret ``text`` carries, if any."""
    kind = next((name for name, rx in PATTERNS if rx.search(text)), None)
    if kind is None:
        match = ASSIGNMENT.search(text)
        if match and shannon_entropy(match.group(1)) >= ENTROPY_BITS:
            kind = "high-entropy secret"
    if kind is None and holds_secret(text):
        kind = HELD
    return kind


def scan_text(path: str, lines: list[tuple[int, str]]) -> list[Finding]:
    findings = []
    for number, text in lines:
        kind = secret_kind(text)
        if kind:
            findings.append(Finding(path, number, kind))
    if lines and not any(f.kind == HELD for f in findings) and holds_secret("\n".join(t for _, t in lines)):
        # A held secret split over lines the commits add (in order): named at the first of them.
        findings.append(Finding(path, lines[0][0], f"{HELD} (split over lines)"))
    return findings


def held_secret_findings(repo: Path, base: str, head: str,
                         secret_values: tuple[str, ...] = ()) -> list[tuple[str, str | None, int | None]]:
    """(commit, path, line) of each message (path None) and each file's added lines in
    base..head that carry a form of a secret this process holds (or of ``secret_values``)."""
    found: list[tuple[str, str | None, int | None]] = [
        (sha, None, None) for sha, message, _rest in log_fields(repo, ["%H", "%B"], f"{base}..{head}")
        if holds_secret(message, secret_values)]
    for path, lines in added_lines(repo, base, head).items():
        if holds_secret("\n".join(text for _, text in lines), secret_values):
            found.append((head, path, lines[0][0]))
    return found


def scan_messages(repo: Path, base: str, head: str) -> list[tuple[str, str, str]]:
    """(commit, kind, message) for each commit message base..head that carries a secret."""
    found = []
    for sha, message, _rest in log_fields(repo, ["%H", "%B"], f"{base}..{head}"):
        kind = secret_kind(message)
        if kind:
            found.append((sha, kind, message.strip()))
    return found


def added_lines(repo: Path, base: str, head: str) -> dict[str, list[tuple[int, str]]]:
    """Lines added between base and head, per file, with their line numbers in head."""
    diff = git("diff", "--no-color", "--unified=0", "--no-ext-diff", "--text", f"{base}..{head}", cwd=repo)
    files: dict[str, list[tuple[int, str]]] = {}
    path, number = None, 0
    for line in diff.splitlines():
        if line.startswith("+++ "):
            path = line[6:] if line.startswith("+++ b/") else None
        elif line.startswith("@@"):
            match = re.search(r"\+(\d+)", line)
            number = int(match.group(1)) if match else 0
        elif line.startswith("+") and path:
            files.setdefault(path, []).append((number, line[1:]))
            number += 1
    return files


def scan_range(repo: Path, base: str, head: str) -> list[Finding]:
    findings: list[Finding] = []
    for path, lines in added_lines(repo, base, head).items():
        findings += scan_text(path, lines)
    return findings
