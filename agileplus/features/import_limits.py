"""What the importer accepts from an untrusted folder, and how it reads it: the bounds
(``ImportLimits``, ``LIMITS``: file sizes, counts, texts, numbers; ``estimate_problem`` and
``list_problem`` are also applied by the admin), YAML parsed with a cap on what aliases expand to
(``safe_yaml``), files read with a size limit and symlinks refused, owned paths kept relative and
inside the repository (``normalize_repo_path``), and the collector of problems, each naming the
file, the line and the limit. Nothing here touches the database.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from agileplus.core.errors import ImportFailed

_ESTIMATE_RE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>d|days?|h|hours?|w|weeks?)?\s*$", re.IGNORECASE)


_UNIT_DAYS = {"d": Decimal(1), "h": Decimal(1) / Decimal(8), "w": Decimal(5)}  # 8-hour days, 5-day weeks


@dataclass(frozen=True)
class ImportLimits:
    """What one import accepts; beyond these a file is refused, naming the limit."""

    file_bytes: int = 1_000_000  # spec.md, plan.md, one WP file
    config_bytes: int = 64_000  # .kittify/config.yaml
    yaml_nodes: int = 20_000  # a YAML document after alias expansion (a 700-byte "bomb" expands to 10^7)
    wps_per_feature: int = 10_000
    dependencies_per_wp: int = 200
    list_items: int = 500  # deliverables, owned_files, allowed/forbidden paths
    item_chars: int = 1_000  # one deliverable or path
    title_chars: int = 300  # WorkPackage.title / Feature.title
    estimate_days: Decimal = Decimal(1000)  # fits WorkPackage.estimate_days (max 9999.99)
    timeout_seconds: int = 7 * 24 * 3600
    retries: int = 20
    max_file_size: int = 1 << 30
    budget_usd: Decimal = Decimal(1_000_000)


LIMITS = ImportLimits()


@dataclass
class Problem:
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: Path, line: int | None, message: str) -> None:
        self.problems.append(Problem(path, line, message))

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        raise ImportFailed(
            f"{first}{more}",
            field=str(first.path),
            fix="correct the file(s) and import again; nothing was imported",
            problems=[str(p) for p in self.problems],
        )


def _key_lines(text: str, first_line: int) -> dict[str, int]:
    """Line numbers of the top-level keys of a YAML block that starts at ``first_line``."""
    lines = {}
    for offset, line in enumerate(text.splitlines()):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if match:
            lines.setdefault(match[1], first_line + offset)
    return lines


class YAMLTooLarge(yaml.YAMLError):
    def __init__(self, problem: str, mark) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def _expanded_size(node: yaml.Node, limit: int) -> int:
    """How many nodes ``node`` becomes once every alias is expanded, computed on the composed
    graph (where an alias is a shared node) without expanding it; a recursive alias is refused."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(current: yaml.Node) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise YAMLTooLarge("a recursive alias (an anchor used inside itself) is not accepted", current.start_mark)
        open_nodes.add(key)
        total = 1
        if isinstance(current, yaml.SequenceNode):
            children = current.value
        elif isinstance(current, yaml.MappingNode):
            children = [item for pair in current.value for item in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                raise YAMLTooLarge(f"the document expands to more than {limit} values (aliases included): "
                                   "limit yaml_nodes", child.start_mark)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(node)


def safe_yaml(text: str, *, max_nodes: int | None = None) -> Any:
    """``yaml.safe_load`` that refuses a document expanding (through aliases) past ``max_nodes``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, max_nodes or LIMITS.yaml_nodes)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _load_yaml(text: str, path: Path, first_line: int, errors: _Collector) -> Any:
    try:
        return safe_yaml(text)
    except RecursionError:
        errors.add(path, first_line, "invalid YAML: nested too deeply")
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = first_line + mark.line if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        errors.add(path, line, f"invalid YAML: {problem}")
        return None


def _split_front_matter(text: str, path: Path, errors: _Collector) -> tuple[dict, str, dict[str, int]] | None:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        errors.add(path, 1, "missing YAML front matter: the file must start with a '---' line")
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            block = "".join(lines[1:index])
            body = "".join(lines[index + 1:]).strip()
            data = _load_yaml(block, path, 2, errors)
            if data is None and errors.problems and errors.problems[-1].path == path:
                return None
            if not isinstance(data, dict):
                errors.add(path, 2, "front matter must be a YAML mapping (key: value lines)")
                return None
            return data, body, _key_lines(block, 2)
    errors.add(path, 1, "front matter is not closed: add a '---' line after it")
    return None


def _str_list(value: Any, key: str, path: Path, line: int | None, errors: _Collector) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    errors.add(path, line, f"'{key}' must be a list of strings")
    return []


def parse_estimate(value: Any) -> Decimal | None:
    """``"3 days"``, ``"2d"``, ``"4 hours"`` (8-hour days), ``"1 week"`` (5 days), ``3`` → days."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        number, unit = Decimal(str(value)), "d"
    else:
        match = _ESTIMATE_RE.match(str(value)[:100])
        if not match:
            raise ValueError(value)
        number, unit = Decimal(match["n"]), (match["unit"] or "d")[0].lower()
    if not number.is_finite() or number.adjusted() > 6:
        raise OverflowError(value)  # beyond any estimate (and beyond what quantize can hold)
    if isinstance(value, (int, float)):
        return number
    return (number * _UNIT_DAYS[unit]).quantize(Decimal("0.01"))


def _refuse_symlink(path: Path, errors: _Collector) -> bool:
    """True (and a problem) when ``path`` is a symlink: links are refused, never followed."""
    if path.is_symlink():
        errors.add(path, None, "is a symbolic link: links are not followed in an import; "
                               "replace it with the file or folder itself")
        return True
    return False


def _read_limited(path: Path, errors: _Collector, limit: int | None = None) -> str | None:
    """The text of a regular file (not a link) of at most ``limit`` bytes, else a problem and None."""
    limit = limit or LIMITS.file_bytes
    if _refuse_symlink(path, errors):
        return None
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            errors.add(path, None, f"is larger than {limit} bytes (limit file_bytes): split it or shorten it")
            return None
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.add(path, None, f"cannot read: {exc}")
        return None


def estimate_problem(days: Decimal) -> str | None:
    """Why ``days`` is not a WP estimate, or None: the one bound (0 < days ≤ ``estimate_days``)
    the importer and the admin apply."""
    if 0 < days <= LIMITS.estimate_days:
        return None
    return f"must be more than 0 and at most {LIMITS.estimate_days:,} days (limit estimate_days)"


def list_problem(key: str, values: list[str], limit: int | None = None) -> str | None:
    """Why a list of ``key`` (deliverables, owned paths…) is over its bounds, or None: the
    importer's and the admin's."""
    limit = limit or LIMITS.list_items
    if len(values) > limit:
        return f"'{key}' has {len(values)} entries; at most {limit} are accepted"
    long = next((v for v in values if len(v) > LIMITS.item_chars), None)
    if long is not None:
        return f"'{key}' has an entry of {len(long)} characters; at most {LIMITS.item_chars}"
    return None


def _bounded_list(values: list[str], key: str, path: Path, line: int | None, errors: _Collector,
                  limit: int | None = None) -> list[str]:
    problem = list_problem(key, values, limit)
    if problem:
        errors.add(path, line, problem)
    return values[:limit or LIMITS.list_items]


def normalize_repo_path(raw: str) -> str | None:
    """A path inside the repository, normalised (``src/./a/`` → ``src/a/``); None when it is empty,
    absolute, or leaves the repository (``..``). A trailing slash (a folder) is kept."""
    text = raw.strip().replace("\\", "/")
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text) or "\x00" in text:
        return None
    normal = posixpath.normpath(text)
    if normal in (".", "..") or normal.startswith("../"):
        return None
    return normal + "/" if text.endswith("/") else normal


def _repo_paths(values: list[str], key: str, path: Path, line: int | None, errors: _Collector) -> list[str]:
    paths = []
    for value in _bounded_list(values, key, path, line, errors):
        normal = normalize_repo_path(value)
        if normal is None:
            errors.add(path, line, f"'{key}' entry {value!r} is not a relative path inside the repository "
                                   "(empty, absolute or with ..): write it like src/models/")
        else:
            paths.append(normal)
    return list(dict.fromkeys(paths))


def _non_finite_key(value: Any, where: str = "") -> str | None:
    """The dotted key of the first NaN or infinite float inside ``value``, or None."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return where or "(top)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        found = _non_finite_key(inner, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _nested_line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\s*{re.escape(key)}\s*:", line):
            return number
    return None
