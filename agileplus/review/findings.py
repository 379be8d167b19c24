"""What a review reports without any configured check (the example's own config has none):
the deliverables found among the WP's changes, the test files it changed, the length of the
functions it wrote, and each functional requirement of the spec with the evidence that names it.

Nothing here runs the agent's code. What is only reported (no check was configured to decide it)
is marked ``–`` and does not reject the WP; a configured check decides (``checks.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agileplus.review.checks import CheckResult, longest_python_function

# A test file by its path: a tests/ or spec/ folder, test_x.py, x_test.go, x.test.ts, x_spec.rb.
TEST_PATH = re.compile(r"(^|/)(tests?|specs?|__tests__)/|(^|/)test_[^/]+$|[_.](test|spec)\.[^/]+$")
TEST_WORDS = {"test", "tests"}
# `FR-1: Users can log in…`, `- **FR-002**: …`, `FR3. …` at the start of a spec line.
FR_LINE = re.compile(r"^\s*(?:[-*]\s*)?\**\s*(FR[-_ ]?\d+)\s*\**\s*[:.)\-–]\s*(.+?)\s*$", re.MULTILINE)
DEFAULT_FUNCTION_LINES = 50


def is_test_path(path: str) -> bool:
    return bool(TEST_PATH.search(path))


@dataclass(frozen=True)
class Requirement:
    fr_id: str  # as the spec writes it (FR-1)
    text: str

    @property
    def pattern(self) -> re.Pattern:
        """``FR-1`` named as FR-1, FR1, fr_1 or FR 1, and not as FR-10."""
        number = re.sub(r"\D", "", self.fr_id)
        return re.compile(rf"\bFR[-_ ]?0*{number}(?!\d)", re.IGNORECASE)


def requirements(spec: str) -> list[Requirement]:
    seen: dict[str, Requirement] = {}
    for fr_id, text in FR_LINE.findall(spec or ""):
        seen.setdefault(fr_id.upper().replace("_", "-").replace(" ", "-"), Requirement(fr_id, text.strip("* ")))
    return list(seen.values())


def deliverable_matches(item: str, root: Path, changed: list[str]) -> list[str]:
    """The paths that deliver ``item``: a folder (``src/handlers/``) by the files this WP changed
    in it; the word ``tests`` by the test files it changed; a bare file name by a changed file of
    that name that is a test only if the name is one (``login_handler.rs`` is not delivered by
    ``tests/login_handler.rs``); a path by itself."""
    name = item.strip().rstrip("/")
    if name.lower() in TEST_WORDS:
        return [p for p in changed if is_test_path(p)]
    if item.strip().endswith("/") or (root / name).is_dir():
        return [p for p in changed if p.startswith(name + "/")]
    if "/" in name:
        return [name] if (root / name).is_file() else []
    wants_test = is_test_path(name) or "test" in name.lower()
    same = [p for p in changed if p.split("/")[-1] == name and is_test_path(p) == wants_test]
    return same[:1] or ([name] if (root / name).is_file() else [])


def deliverable_line(item: str, found: list[str], root: Path) -> str:
    if not found:
        return f"✗ {item} missing" + (" (no test file changed by this WP)" if item.strip().lower() in TEST_WORDS
                                       else "")
    name = item.strip().rstrip("/")
    if name.lower() in TEST_WORDS or item.strip().endswith("/") or (root / name).is_dir():
        shown = ", ".join(found[:3]) + (f", … ({len(found)} files)" if len(found) > 3 else "")
        return f"✓ {item.strip()}: {shown}"
    lines = len((root / found[0]).read_text(errors="replace").splitlines()) if (root / found[0]).is_file() else 0
    return f"✓ {found[0]}" + (f" ({lines} line{'s' if lines != 1 else ''})" if lines else "")


def check_deliverables(root: Path, deliverables: list[str], changed: list[str]) -> CheckResult:
    result = CheckResult("deliverables", "Deliverables Check", True)
    present = 0
    for item in deliverables:
        found = deliverable_matches(item, root, changed)
        present += bool(found)
        result.ok = result.ok and bool(found)
        result.lines.append(deliverable_line(item, found, root))
    result.lines.append(f"{'✓' if result.ok else '✗'} {present}/{len(deliverables)} deliverables present")
    result.figures = {"present": present, "total": len(deliverables)}
    return result


def evidence_texts(root: Path, changed: list[str], commits: list, results: list[CheckResult],
                   records: list) -> dict[str, str]:
    """Where an FR may be named: each changed file (its path and, up to 200 KB, its text), each
    commit message, each configured check's ``fr_ids``, each evidence record of the WP."""
    texts: dict[str, str] = {}
    for r in results:
        if r.fr_ids:
            texts[f"check {r.name} ({'pass' if r.ok else 'FAILED'})"] = " ".join(r.fr_ids)
    for path in changed[:300]:
        target = root / path
        body = target.read_text(errors="replace")[:200_000] if target.is_file() and not target.is_symlink() else ""
        texts[path] = f"{path}\n{body}"
    for commit in commits:
        texts[f"commit {commit.sha[:7]}"] = commit.message
    for ev in records:
        texts[f"{ev.get_kind_display()} {ev.reference}"] = f"{ev.fr_id} {ev.summary}"
    return texts


def changed_tests_result(changed: list[str]) -> CheckResult:
    """Without a configured test check: which test files the WP changed (its tests were not run)."""
    tests = [p for p in changed if is_test_path(p)]
    line = (f"– {len(tests)} test file{'s' if len(tests) != 1 else ''} changed: {', '.join(tests[:3])}"
            + (" …" if len(tests) > 3 else "") if tests else "– No test file changed by this WP")
    return CheckResult("test_files", "Test Quality", True, [
        line, "– Tests not run: no test check configured (review.checks: a command with a parser runs them, "
              "coverage_file adds coverage)"], {"test_files": len(tests)})


def function_length_result(root: Path, changed: list[str], limit: int = DEFAULT_FUNCTION_LINES) -> CheckResult | None:
    """The longest Python function the WP wrote, against the example's target, reported only."""
    longest, where = longest_python_function(root, changed)
    if not longest:
        return None
    mark = "✓" if longest <= limit else "–"
    said = "OK" if longest <= limit else f"over the target in {where} (not a configured check: reported only)"
    return CheckResult("function_length_report", "Code Quality", True,
                       [f"{mark} Function length {said} (max: {longest} lines, target: {limit})"], {"max": longest})


def compliance_result(spec: str, wp_text: str, evidence: dict[str, str]) -> CheckResult | None:
    """Each functional requirement of the spec this WP names (all of them when it names none),
    with what names it: a configured check, a changed file's name or content, a commit, an
    evidence record. ``evidence``: source label → text to search (``{"commit 1a2b3c4": message}``)."""
    frs = requirements(spec)
    if not frs:
        return None
    named = [fr for fr in frs if fr.pattern.search(wp_text or "")]
    lines, found_any = [], 0
    for fr in named or frs:
        sources = [label for label, text in evidence.items() if fr.pattern.search(text)]
        found_any += bool(sources)
        lines.append(f"✓ {fr.fr_id} {fr.text} — evidence: {', '.join(sources[:3])}" if sources
                     else f"– {fr.fr_id} {fr.text} — no evidence yet (no check, test, commit or evidence record "
                          f"of this WP names {fr.fr_id})")
    return CheckResult("spec_compliance", "Specification Compliance", True, lines,
                       {"requirements": len(named or frs), "with_evidence": found_any})
