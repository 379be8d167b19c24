"""Importing features from a target repository (``kitty-specs/<slug>/``).

Layout::

    <repo>/.kittify/config.yaml            optional: agent, constraints, commit convention
    <repo>/kitty-specs/<slug>/spec.md       required
    <repo>/kitty-specs/<slug>/plan.md       required once there are tasks
    <repo>/kitty-specs/<slug>/tasks/WP01-<name>.md   YAML front matter + the WP's plan

Everything is parsed and checked before the database is touched, and the whole
import is one transaction: a bad file leaves the database as it was.

The folder is untrusted input (an agent can write it): every file has a size limit, YAML is
parsed with a cap on what aliases expand to, counts, texts and numbers are bounded (``LIMITS``),
symlinks anywhere in the imported tree are refused (not followed: a link could carry a file from
outside the repository into the database and into prompts), and owned paths must be relative
paths inside the repository. Each refusal names the file, the line and the limit. A new
feature walks created → specified → researched → planned through
``transition_feature`` (one audit entry each, by the importing actor); a new WP
whose ``lane`` is past ``planned`` walks there through ``transition_wp``. On
re-import nothing moves backwards: a lane that differs from the database is
reported, not forced.
"""

from __future__ import annotations

import posixpath
import re
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from agileplus.core.actors import Actor, parse_actor
from agileplus.core.errors import DomainError, ImportFailed
from agileplus.features import dag
from agileplus.features.lifecycles import FeatureState, WPState, normalize_wp_state
from agileplus.features.models import Dependency, Feature, Project, WorkPackage
from agileplus.features.project_config import budget_config, validate_merge_config
from agileplus.features.services import normalize_wp_code, transition_feature, transition_wp
from harnesses.git import GitError, checked_out_push_fix, git, redact_url

SPECS_DIR = "kitty-specs"
CONFIG_PATH = Path(".kittify") / "config.yaml"
DEFAULT_COMMIT_CONVENTION = "feat({wp}): <description>"
SLUG_RE = re.compile(r"^(?P<number>\d+)-[a-z0-9][a-z0-9-]*$")
WP_ID_RE = re.compile(r"^WP\d{2,}$")
# The path from planned to each lane a new WP may be imported in.
LANE_PATHS = {
    WPState.PLANNED: (),
    WPState.DOING: (WPState.DOING,),
    WPState.FOR_REVIEW: (WPState.DOING, WPState.FOR_REVIEW),
    WPState.DONE: (WPState.DOING, WPState.FOR_REVIEW, WPState.DONE),
    WPState.BLOCKED: (WPState.BLOCKED,),
}
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


@dataclass
class WPSpec:
    code: str
    title: str
    plan: str
    dependencies: list[str]
    deliverables: list[str]
    estimate_days: Decimal | None
    owned_paths: list[str]
    lane: str
    path: Path
    lines: dict[str, int]


@dataclass
class FeatureSpec:
    slug: str
    number: int
    title: str
    spec: str
    plan: str
    path: Path
    wps: list[WPSpec]


@dataclass
class RepoConfig:
    raw: dict
    agent: dict
    constraints: dict


@dataclass
class ImportReport:
    features: list[Feature] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "features": [f.slug for f in self.features],
            "created": self.created,
            "updated": self.updated,
            "notes": self.notes,
        }


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


# --- Parsing ----------------------------------------------------------------------------


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


_DELIVERABLES_HEADING = re.compile(r"^#{1,6}\s+Deliverables\s*$", re.IGNORECASE | re.MULTILINE)
_DELIVERABLE_ITEM = re.compile(r"^(?:\d+[.)]|[-*])\s+`?([^\s`]+)`?")


def plan_deliverables(body: str) -> list[str]:
    """A WP without ``deliverables:`` in its front matter: the paths its plan lists under a
    ``Deliverables`` heading (the example's ``1. src/handlers/login.rs``), top-level items only."""
    heading = _DELIVERABLES_HEADING.search(body)
    if heading is None:
        return []
    found: list[str] = []
    for line in body[heading.end():].splitlines():
        if line.startswith("#"):
            break
        item = _DELIVERABLE_ITEM.match(line)
        path = item[1].rstrip(".,:;") if item else ""
        if ("/" in path or "." in path) and path not in found:  # a path, not a word of prose
            found.append(path)
    return found


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


def _parse_wp(path: Path, errors: _Collector) -> WPSpec | None:
    text = _read_limited(path, errors)
    if text is None:
        return None
    parsed = _split_front_matter(text, path, errors)
    if parsed is None:
        return None
    data, body, lines = parsed
    file_code = path.name.split("-", 1)[0].removesuffix(".md")
    raw_id = data.get("work_package_id", file_code)
    code = normalize_wp_code(str(raw_id))
    if not WP_ID_RE.match(code):
        errors.add(path, lines.get("work_package_id", 1), f"work_package_id '{raw_id}' must look like WP01")
        return None
    lane_raw = str(data.get("lane") or WPState.PLANNED)
    lane = normalize_wp_state(lane_raw)
    if lane not in WPState.ALL:
        errors.add(path, lines.get("lane"), f"lane '{lane_raw}' is not one of {', '.join(WPState.ALL)}")
    try:
        estimate = parse_estimate(data.get("estimate"))
    except OverflowError:
        estimate = Decimal(-1)
    except ValueError:
        errors.add(path, lines.get("estimate"), f"estimate '{str(data.get('estimate'))[:50]}' is not like "
                                                "'3 days' or '4 hours'")
        estimate = None
    if estimate is not None and (problem := estimate_problem(estimate)):
        errors.add(path, lines.get("estimate"), f"estimate '{str(data.get('estimate'))[:50]}' {problem}")
        estimate = None
    title = str(data.get("title") or "").strip()
    if not title:
        heading = re.search(r"^#\s+(.+)$", body, re.MULTILINE)
        title = heading[1].strip() if heading else code
    if len(title) > LIMITS.title_chars:
        errors.add(path, lines.get("title"), f"title has {len(title)} characters; at most {LIMITS.title_chars}")
    deps = _str_list(data.get("dependencies"), "dependencies", path, lines.get("dependencies"), errors)
    deps = _bounded_list(deps, "dependencies", path, lines.get("dependencies"), errors, LIMITS.dependencies_per_wp)
    return WPSpec(
        code=code,
        title=title,
        plan=body,
        dependencies=[normalize_wp_code(d) for d in deps],
        deliverables=_bounded_list(
            _str_list(data["deliverables"], "deliverables", path, lines.get("deliverables"), errors)
            if "deliverables" in data else plan_deliverables(body),
            "deliverables", path, lines.get("deliverables"), errors),
        estimate_days=estimate,
        owned_paths=_repo_paths(
            _str_list(data.get("owned_files"), "owned_files", path, lines.get("owned_files"), errors),
            "owned_files", path, lines.get("owned_files"), errors),
        lane=lane,
        path=path,
        lines=lines,
    )


def _check_graph(wps: list[WPSpec], errors: _Collector) -> None:
    by_code: dict[str, WPSpec] = {}
    for wp in wps:
        if wp.code in by_code:
            errors.add(wp.path, wp.lines.get("work_package_id", 1),
                       f"duplicate work_package_id {wp.code}: also in {by_code[wp.code].path.name}")
            continue
        by_code[wp.code] = wp
    for wp in wps:
        for dep in wp.dependencies:
            if dep not in by_code:
                known = ", ".join(sorted(by_code)) or "none"
                errors.add(wp.path, wp.lines.get("dependencies"),
                           f"{wp.code} depends on unknown work package {dep} (known: {known})")
            elif dep == wp.code:
                errors.add(wp.path, wp.lines.get("dependencies"), f"{wp.code} depends on itself")
    if errors.problems:
        return
    cycle = dag.find_cycle(by_code, [(wp.code, d) for wp in wps for d in wp.dependencies])
    if cycle:
        first = by_code[cycle[0]]
        files = ", ".join(f"{by_code[c].path.name}:{by_code[c].lines.get('dependencies', 1)}" for c in cycle[:-1])
        errors.add(first.path, first.lines.get("dependencies"),
                   f"dependency cycle {' -> '.join(cycle)} (in {files})")


def _read_required(path: Path, errors: _Collector, why: str) -> str:
    if not path.is_symlink() and not path.is_file():
        errors.add(path, None, f"missing file: {why}")
        return ""
    return _read_limited(path, errors) or ""


def parse_feature_dir(folder: Path, errors: _Collector) -> FeatureSpec | None:
    slug = folder.name
    match = SLUG_RE.match(slug)
    if not match:
        errors.add(folder, None, f"feature folder '{slug}' must be named like 003-auth-system")
        return None
    if _refuse_symlink(folder, errors):
        return None
    spec = _read_required(folder / "spec.md", errors, "every feature needs spec.md")
    tasks_dir = folder / "tasks"
    task_files = []
    if not _refuse_symlink(tasks_dir, errors) and tasks_dir.is_dir():
        task_files = sorted(tasks_dir.glob("WP*.md"))
    if len(task_files) > LIMITS.wps_per_feature:
        errors.add(tasks_dir, None, f"{len(task_files)} work package files; at most {LIMITS.wps_per_feature} "
                                    "per feature (limit wps_per_feature): split the feature")
        return None
    plan_path = folder / "plan.md"
    plan = _read_required(plan_path, errors, "tasks need plan.md") if task_files else (
        (_read_limited(plan_path, errors) or "") if plan_path.is_symlink() or plan_path.is_file() else ""
    )
    wps = [wp for wp in (_parse_wp(p, errors) for p in task_files) if wp is not None]
    _check_graph(wps, errors)
    heading = re.search(r"^#\s+(.+)$", spec, re.MULTILINE)
    title = heading[1].strip() if heading else slug
    if len(title) > LIMITS.title_chars:
        errors.add(folder / "spec.md", None, f"the title heading has {len(title)} characters; "
                                             f"at most {LIMITS.title_chars}")
    return FeatureSpec(slug, int(match["number"]), title, spec, plan, folder, wps)


def parse_config(repo: Path, errors: _Collector) -> RepoConfig:
    path = repo / CONFIG_PATH
    if _refuse_symlink(path.parent, errors) or (not path.is_symlink() and not path.is_file()):
        return RepoConfig({}, {}, {"commit_convention": DEFAULT_COMMIT_CONVENTION})
    text = _read_limited(path, errors, LIMITS.config_bytes)
    if text is None:
        return RepoConfig({}, {}, {})
    data = _load_yaml(text, path, 1, errors)
    if data is None:
        return RepoConfig({}, {}, {})
    lines = _key_lines(text, 1)
    if not isinstance(data, dict):
        errors.add(path, 1, "config must be a YAML mapping")
        return RepoConfig({}, {}, {})
    odd = _non_finite_key(data)
    if odd is not None:  # .nan / .inf cannot be stored (JSON has no such numbers) nor mean anything here
        errors.add(path, _nested_line(text, odd.rsplit(".", 1)[-1]), f"'{odd}' is .nan or .inf: give a number")
        return RepoConfig({}, {}, {})
    agent = data.get("agent") or {}
    constraints = dict(data.get("constraints") or {})
    if not isinstance(agent, dict):
        errors.add(path, lines.get("agent"), "'agent' must be a mapping (harness, timeout_seconds, …)")
        agent = {}
    for key, minimum, maximum in (("timeout_seconds", 1, LIMITS.timeout_seconds), ("retries", 0, LIMITS.retries)):
        value = agent.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not minimum <= value <= maximum):
            errors.add(path, _nested_line(text, key), f"agent.{key} must be a whole number from {minimum} "
                                                      f"to {maximum} (limit {key})")
    _check_budgets(agent, path, text, errors)
    env = agent.get("environment") or {}
    if not isinstance(env, dict):
        errors.add(path, _nested_line(text, "environment"), "agent.environment must be a mapping NAME: value")
    size = constraints.get("max_file_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                             or not 0 < size <= LIMITS.max_file_size):
        errors.add(path, _nested_line(text, "max_file_size"),
                   f"constraints.max_file_size must be a byte count from 1 to {LIMITS.max_file_size}")
    for key in ("allowed_paths", "forbidden_paths"):
        line = _nested_line(text, key)
        constraints[key] = _bounded_list(_str_list(constraints.get(key), f"constraints.{key}", path, line, errors),
                                         f"constraints.{key}", path, line, errors)
    _check_merge_config(data.get("merge"), text, path, lines, errors)
    commit = data.get("commit") if isinstance(data.get("commit"), dict) else {}
    constraints["commit_convention"] = str(
        data.get("commit_convention") or commit.get("convention") or constraints.get("commit_convention")
        or DEFAULT_COMMIT_CONVENTION
    )
    return RepoConfig(data, dict(agent), constraints)


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


def _check_budgets(agent: dict, path: Path, text: str, errors: _Collector) -> None:
    try:
        budgets = budget_config(agent)
    except DomainError:
        return  # a malformed budget is refused at dispatch, naming the key; here only the bound

    for key, value in budgets.items():
        if not value.is_finite() or value > LIMITS.budget_usd:
            errors.add(path, _nested_line(text, key), f"agent.budget.{key} must be at most {LIMITS.budget_usd} USD")


def _check_merge_config(merge: object, text: str, path: Path, lines: dict[str, int], errors: _Collector) -> None:
    try:
        validate_merge_config(merge)
    except DomainError as exc:
        key = (exc.field or "merge").split(".")[-1]
        errors.add(path, _nested_line(text, key) or lines.get("merge"), f"{exc.message} ({exc.fix})")


def _nested_line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\s*{re.escape(key)}\s*:", line):
            return number
    return None


def discover(path: Path, repo: Path | None, errors: _Collector) -> tuple[Path, list[Path]]:
    """The repository root and the feature folders ``path`` names."""
    path = path.resolve()
    if not path.exists():
        raise ImportFailed(f"{path} does not exist", field="path", fix="give a feature folder or a repository root")
    if (path / "spec.md").exists() or path.parent.name == SPECS_DIR:
        folders = [path]
        root = repo or (path.parent.parent if path.parent.name == SPECS_DIR else path.parent)
    else:
        specs = path / SPECS_DIR
        if not specs.is_dir():
            raise ImportFailed(
                f"{path} has no {SPECS_DIR}/ folder and is not a feature folder",
                field="path",
                fix=f"give a repository root holding {SPECS_DIR}/<slug>/ or one feature folder",
            )
        if _refuse_symlink(specs, errors):
            return Path(repo or path).resolve(), []
        folders = sorted(p for p in specs.iterdir() if p.is_dir() or p.is_symlink())
        root = repo or path
        if not folders:
            errors.add(specs, None, "no feature folders found")
    return Path(root).resolve(), folders


# --- Writing ------------------------------------------------------------------------------


def _project_name(name: str | None, root: Path) -> str:
    text = name or root.name
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if not slug:
        raise DomainError(f"'{text}' is not a usable project name", field="--project", fix="use letters and digits")
    return slug


def _config_project(config: RepoConfig) -> str | None:
    value = config.raw.get("project")
    if isinstance(value, dict):
        value = value.get("name")
    return str(value) if value else None


def _advance_feature(feature: Feature, wanted: str, actor: Actor) -> None:
    order = FeatureState.ORDER
    if feature.state not in order:
        return
    while order.index(feature.state) < order.index(wanted):
        result = transition_feature(feature, order[order.index(feature.state) + 1], actor=actor)
        feature = result.feature


def _wanted_state(spec: FeatureSpec) -> str:
    if spec.wps:
        return FeatureState.PLANNED
    if spec.plan.strip():
        return FeatureState.RESEARCHED
    return FeatureState.SPECIFIED


def _write_feature(spec: FeatureSpec, project: Project, config: RepoConfig, actor: Actor,
                   report: ImportReport) -> Feature:
    feature = Feature.objects.filter(slug=spec.slug).first()
    values = {
        "project": project, "number": spec.number, "title": spec.title, "spec": spec.spec, "plan": spec.plan,
        "constraints": config.constraints, "agent_config": config.agent, "source_path": str(spec.path),
    }
    is_new = feature is None
    if is_new:
        feature = Feature.objects.create(slug=spec.slug, **values)
        report.created.append(spec.slug)
    else:
        for key, value in values.items():
            setattr(feature, key, value)
        feature.save(update_fields=[*values, "updated_at"])
        report.updated.append(spec.slug)

    existing = {wp.code: wp for wp in feature.work_packages.all()}
    new_codes = []
    for wp_spec in spec.wps:
        wp = existing.get(wp_spec.code)
        fields = {
            "title": wp_spec.title, "plan": wp_spec.plan, "deliverables": wp_spec.deliverables,
            "estimate_days": wp_spec.estimate_days, "owned_paths": wp_spec.owned_paths,
            "source_path": str(wp_spec.path),
        }
        if wp is None:
            existing[wp_spec.code] = WorkPackage.objects.create(feature=feature, code=wp_spec.code, **fields)
            new_codes.append(wp_spec.code)
        else:
            for key, value in fields.items():
                setattr(wp, key, value)
            wp.save(update_fields=[*fields, "updated_at"])
            if wp.state != wp_spec.lane:
                report.notes.append(
                    f"{spec.slug}/{wp.code}: lane in {wp_spec.path.name} is {wp_spec.lane}, database says "
                    f"{wp.state}: not changed (use `agileplus wp transition`)"
                )
    for code in sorted(set(existing) - {w.code for w in spec.wps}):
        report.notes.append(f"{spec.slug}/{code}: in the database but has no task file: kept")
    _replace_dependencies(feature, spec, existing)

    if feature.state == FeatureState.CANCELLED:
        report.notes.append(f"{spec.slug}: cancelled: state not changed")
    else:
        _advance_feature(feature, _wanted_state(spec), actor)
    _walk_new_wps_to_lanes(spec, existing, new_codes, actor)
    feature.refresh_from_db()
    return feature


def _replace_dependencies(feature: Feature, spec: FeatureSpec, by_code: dict[str, WorkPackage]) -> None:
    described = [by_code[w.code].pk for w in spec.wps]
    Dependency.objects.filter(wp_id__in=described).delete()
    Dependency.objects.bulk_create(
        [Dependency(wp=by_code[w.code], depends_on=by_code[d]) for w in spec.wps for d in dict.fromkeys(w.dependencies)]
    )
    edges = list(Dependency.objects.filter(wp__feature=feature).values_list("wp__code", "depends_on__code"))
    cycle = dag.find_cycle(by_code, edges)
    if cycle:  # only possible through WPs kept from an earlier import
        raise ImportFailed(f"dependency cycle {' -> '.join(cycle)} with work packages already in the database",
                           field="dependencies", fix="remove one of these dependencies")


def _walk_new_wps_to_lanes(spec: FeatureSpec, by_code: dict[str, WorkPackage], new_codes: list[str],
                           actor: Actor) -> None:
    specs = {w.code: w for w in spec.wps}
    order = [c for layer in dag.topological_layers(specs, [(w.code, d) for w in spec.wps for d in w.dependencies])
             for c in sorted(layer)]
    for code in order:
        if code not in new_codes:
            continue
        wp_spec = specs[code]
        for target in LANE_PATHS[wp_spec.lane]:
            try:
                transition_wp(by_code[code], target, actor=actor, metadata={"imported_from": wp_spec.path.name})
            except DomainError as exc:
                raise ImportFailed(
                    f"{wp_spec.path}:{wp_spec.lines.get('lane', 1)}: lane {wp_spec.lane} cannot be reached: {exc}",
                    field=str(wp_spec.path),
                    fix="import it as planned, or finish its dependencies first; nothing was imported",
                ) from exc


def is_remote(path: str | Path) -> bool:
    """A git URL (``https://…``, ``ssh://…``, ``git@host:repo``) rather than a folder."""
    text = str(path)
    return "://" in text or bool(re.match(r"^[\w.-]+@[\w.-]+:", text))


def import_features(path: str | Path, *, actor: Actor | str, project: str | None = None,
                    repo: str | Path | None = None) -> ImportReport:
    """Import every feature under ``path`` (a feature folder, a repository root, or the URL of a
    repository, read from a shallow clone of its main branch) in one transaction."""
    bare = not is_remote(path) and _is_bare_repository(Path(path))
    if not is_remote(path) and not bare:
        return _import_features(Path(path), actor=actor, project=project, repo=repo)
    if bare:  # a bare origin by plain path: read like a URL, from a clone of its main branch
        path = str(Path(path).resolve())
    if repo:
        raise ImportFailed("--repo is for a local feature folder; a URL is the repository itself", field="--repo",
                           fix="drop --repo when importing from a URL")
    url = str(path)
    with tempfile.TemporaryDirectory(prefix="agileplus-import-") as scratch:
        clone = Path(scratch) / re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])
        try:
            git("clone", "--quiet", "--depth", "1", url, str(clone))
        except GitError as exc:
            raise ImportFailed(f"cannot clone {redact_url(url)}: {str(exc)[-300:]}", field="path",
                               fix="check the URL and that this machine's credentials can read it") from None
        return _import_features(clone, actor=actor, project=project, repo=None, origin=url)


def _is_bare_repository(path: Path) -> bool:
    return path.is_dir() and git("rev-parse", "--is-bare-repository", cwd=path, check=False) == "true"


def _import_features(path: Path, *, actor: Actor | str, project: str | None, repo: str | Path | None,
                     origin: str | None = None) -> ImportReport:
    actor = parse_actor(actor)
    errors = _Collector()
    root, folders = discover(path, Path(repo).resolve() if repo else None, errors)
    config = parse_config(root, errors)
    specs = [s for s in (parse_feature_dir(f, errors) for f in folders) if s is not None]
    errors.raise_if_any()
    if origin is None:  # a URL's scratch clone is not what merges push to
        _refuse_unpushable_origin(root, project or _config_project(config))
    report = ImportReport()
    with transaction.atomic():
        name = _project_name(project or _config_project(config), root)
        proj, _ = Project.objects.get_or_create(name=name, defaults={"repo_url": origin or str(root)})
        proj.repo_url = origin or str(root)
        proj.config = config.raw
        proj.save(update_fields=["repo_url", "config"])
        for spec in specs:
            report.features.append(_write_feature(spec, proj, config, actor, report))
    if git("rev-parse", "--show-toplevel", cwd=root, check=False) != str(root):
        report.notes.append(f"{root} is not the root of a git repository: the features are planned, but an agent "
                            f"needs one to branch from (git -C {root} init -b main && git -C {root} add -A && "
                            f"git -C {root} commit -m initial)")
    return report


def _refuse_unpushable_origin(root: Path, project: str | None) -> None:
    """A merge pushes main to this repository: refuse now, with the exact fix, when git would
    refuse that push later (a normal clone with main checked out)."""
    existing = Project.objects.filter(name=_project_name(project, root)).first()
    main = existing.main_branch if existing else Project._meta.get_field("main_branch").default
    fix = checked_out_push_fix(root, main)
    if fix:
        raise ImportFailed(f"{root} has {main} checked out, and git refuses the push of each merge to it",
                           field="repository", fix=f"{fix}  (git then updates the checked-out files on each "
                                                   "merge, and refuses while they have uncommitted changes)")


def import_path(path: str | Path, *, actor: Actor | str, project: str | None = None,
                repo: str | Path | None = None) -> list[Feature]:
    """Import and return the features under ``path``; see ``import_features`` for the report."""
    return import_features(path, actor=actor, project=project, repo=repo).features
