"""No function over 60 lines outside tests and migrations: a longer one is several steps that
want names. Counted with ast from the ``def`` line to the last line (decorators excluded)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60


def project_python_files() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    return [ROOT / f for f in tracked if not f.startswith("tests/") and "/migrations/" not in f]


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path.relative_to(root)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_LINES]


def test_no_function_is_over_60_lines():
    files = project_python_files()
    assert len(files) > 50, "git ls-files found too few files: the check is not looking"
    assert [f for path in files for f in long_functions(path)] == []


def test_the_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n")
    assert long_functions(tmp_path / "long.py", tmp_path) == ["long.py:1 long (62 lines)"]
