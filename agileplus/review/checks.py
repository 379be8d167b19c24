"""Review checks: each runs in a clean checkout of main merged with the WP branch and
returns one CheckResult. Test, coverage and lint output is parsed, not guessed."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from agileplus.core.secrets import agent_base_environment
from agileplus.dispatch.sandboxing import check_sandbox
from harnesses.base import HarnessError

DEFAULT_TIMEOUT = 600


@dataclass
class CheckResult:
    name: str
    section: str
    ok: bool
    lines: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    fr_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "section": self.section, "ok": self.ok, "lines": self.lines,
                "figures": self.figures, "fr_ids": self.fr_ids}


def run_command(command: str, cwd: Path, timeout: int, env: dict | None = None,
                network: str = "none") -> tuple[int | None, str]:
    """Run a check's command on the candidate tree. It is the agent's code: it runs in the same
    sandbox as an agent (no farm secrets, no network unless the check declares it, the candidate
    tree writable but not its .git, nothing else of this machine)."""
    try:
        sandbox = check_sandbox(cwd, network=network)
    except HarnessError as exc:
        return 1, f"not run: {exc}"
    environment = sandbox.environment({**agent_base_environment(), **(env or {})})
    with sandbox:
        try:
            proc = subprocess.run(sandbox.wrap(["/bin/sh", "-c", command]), cwd=cwd, capture_output=True, text=True,
                                  timeout=timeout, env=environment, start_new_session=True,
                                  preexec_fn=sandbox.preexec)
        except subprocess.TimeoutExpired as exc:
            return None, f"timed out after {timeout}s\n{exc.stdout or ''}"
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


# --- test output parsers: (passed, failed, total) ----------------------------------


def parse_pytest(out: str) -> tuple[int, int, int] | None:
    tail = [line for line in out.splitlines() if re.search(r"\b(passed|failed|error)\b", line)]
    if not tail:
        return None
    line = tail[-1]
    get = lambda word: int(m.group(1)) if (m := re.search(rf"(\d+) {word}", line)) else 0  # noqa: E731
    passed, failed = get("passed"), get("failed") + get("error")
    return passed, failed, passed + failed


def parse_unittest(out: str) -> tuple[int, int, int] | None:
    ran = re.search(r"Ran (\d+) tests?", out)
    if not ran:
        return None
    total = int(ran.group(1))
    bad = re.search(r"FAILED \(([^)]*)\)", out)
    failed = sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)", bad.group(1))) if bad else 0
    return total - failed, failed, total


def parse_cargo(out: str) -> tuple[int, int, int] | None:
    results = re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", out)
    if not results:
        return None
    passed = sum(int(p) for p, _ in results)
    failed = sum(int(f) for _, f in results)
    return passed, failed, passed + failed


def parse_go(out: str) -> tuple[int, int, int] | None:
    passed = len(re.findall(r"^\s*--- PASS", out, re.MULTILINE))
    failed = len(re.findall(r"^\s*--- FAIL", out, re.MULTILINE))
    if not passed and not failed:
        if re.search(r"^ok\s", out, re.MULTILINE) or re.search(r"^FAIL\s", out, re.MULTILINE):
            ok = len(re.findall(r"^ok\s", out, re.MULTILINE))
            bad = len(re.findall(r"^FAIL\s", out, re.MULTILINE))
            return ok, bad, ok + bad
        return None
    return passed, failed, passed + failed


def parse_jest(out: str) -> tuple[int, int, int] | None:
    line = re.search(r"^Tests:\s+(.*)$", out, re.MULTILINE)
    if not line:
        return None
    get = lambda word: int(m.group(1)) if (m := re.search(rf"(\d+) {word}", line.group(1))) else 0  # noqa: E731
    return get("passed"), get("failed"), get("total")


TEST_PARSERS = {"pytest": parse_pytest, "unittest": parse_unittest, "cargo": parse_cargo, "go": parse_go,
                "jest": parse_jest}


# --- coverage readers: percent ------------------------------------------------------


def read_coverage(path: Path) -> float | None:
    if not path.exists():
        return None
    text = path.read_text(errors="replace")
    if path.suffix == ".json":
        data = json.loads(text)
        return float(data["totals"]["percent_covered"])
    if path.suffix == ".xml":
        return float(ET.fromstring(text).get("line-rate", 0)) * 100
    found = sum(int(n) for n in re.findall(r"^LF:(\d+)", text, re.MULTILINE))
    hit = sum(int(n) for n in re.findall(r"^LH:(\d+)", text, re.MULTILINE))
    return 100.0 * hit / found if found else None


def longest_python_function(root: Path, paths: list[str]) -> tuple[int, str]:
    longest, where = 0, ""
    for rel in paths:
        if not rel.endswith(".py") or not (root / rel).is_file():
            continue
        try:
            tree = ast.parse((root / rel).read_text(errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > longest:
                    longest, where = length, f"{rel}:{node.name}"
    return longest, where


# --- the checks -----------------------------------------------------------------------


def check_tests(root: Path, spec: dict) -> CheckResult:
    parser = TEST_PARSERS.get(spec.get("parser", "pytest"), parse_pytest)
    code, out = run_command(spec["command"], root, int(spec.get("timeout", DEFAULT_TIMEOUT)), spec.get("env"),
                            spec.get("network", "none"))
    counts = parser(out)
    result = CheckResult(spec.get("name", "tests"), "Test Quality", False, fr_ids=spec.get("fr_ids", []))
    if code is None:
        result.lines.append(f"✗ Tests timed out ({spec.get('timeout', DEFAULT_TIMEOUT)}s)")
        return result
    if counts is None:
        result.lines.append(f"✗ No test results found in the output (exit {code})")
        result.lines += [f"  {line}" for line in out.strip().splitlines()[-5:]]
        return result
    passed, failed, total = counts
    result.ok = code == 0 and failed == 0 and total > 0
    result.figures = {"passed": passed, "failed": failed, "total": total}
    mark = "✓" if result.ok else "✗"
    result.lines.append(f"{mark} All tests pass ({passed}/{total})" if result.ok
                        else f"{mark} Tests failing: {failed} of {total} ({passed} passed, exit {code})")
    if not result.ok:
        result.lines += [f"  {line}" for line in out.strip().splitlines()[-8:]]
    cov_file = spec.get("coverage_file")
    if cov_file:
        percent = read_coverage(root / cov_file)
        target = float(spec.get("coverage_threshold", 0))
        if percent is None:
            result.ok = False
            result.lines.append(f"✗ Coverage report {cov_file} not found")
        else:
            good = percent >= target
            result.ok = result.ok and good
            result.figures["coverage"] = round(percent, 1)
            result.lines.append(f"{'✓' if good else '✗'} Test coverage: {percent:.0f}% (target: {target:.0f}%)")
    return result


def check_command(root: Path, spec: dict, section: str) -> CheckResult:
    code, out = run_command(spec["command"], root, int(spec.get("timeout", DEFAULT_TIMEOUT)), spec.get("env"),
                            spec.get("network", "none"))
    result = CheckResult(spec["name"], section, code == 0, fr_ids=spec.get("fr_ids", []))
    label = spec.get("label") or spec["name"]
    result.lines.append(f"{'✓' if result.ok else '✗'} {label}" + ("" if result.ok else f" (exit {code})"))
    if not result.ok:
        result.lines += [f"  {line}" for line in out.strip().splitlines()[-8:]]
    return result


def check_function_length(root: Path, changed: list[str], limit: int) -> CheckResult:
    longest, where = longest_python_function(root, changed)
    ok = longest <= limit
    return CheckResult("function_length", "Code Quality", ok,
                       [f"{'✓' if ok else '✗'} Function length {'OK' if ok else 'too long'} "
                        f"(max: {longest} lines{f' in {where}' if where and not ok else ''}, target: {limit})"],
                       {"max": longest})
