"""Reading a target repository's specs into plain values, before anything is written:
``discover`` finds the features under ``kitty-specs/``, ``parse_feature_dir`` reads one feature's
spec, plan and work packages (``FeatureSpec``, ``WPSpec``; the dependency graph checked),
``parse_config`` reads ``.kittify/config.yaml`` (``RepoConfig``: agent, budgets, merge queue,
constraints). Every value goes through the bounds of ``import_limits``; nothing here touches the
database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from agileplus.core.errors import DomainError, ImportFailed
from agileplus.features import dag
from agileplus.features.import_limits import (
    LIMITS,
    _bounded_list,
    _Collector,
    _key_lines,
    _load_yaml,
    _nested_line,
    _non_finite_key,
    _read_limited,
    _refuse_symlink,
    _repo_paths,
    _split_front_matter,
    _str_list,
    estimate_problem,
    parse_estimate,
)
from agileplus.features.lifecycles import WPState, normalize_wp_state
from agileplus.features.project_config import budget_config, validate_merge_config
from agileplus.features.services import normalize_wp_code

SPECS_DIR = "kitty-specs"


CONFIG_PATH = Path(".kittify") / "config.yaml"


DEFAULT_COMMIT_CONVENTION = "feat({wp}): <description>"


SLUG_RE = re.compile(r"^(?P<number>\d+)-[a-z0-9][a-z0-9-]*$")


WP_ID_RE = re.compile(r"^WP\d{2,}$")


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
    candidates: int | None
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
        candidates=_candidates(data.get("candidates"), path, lines.get("candidates"), errors),
        path=path,
        lines=lines,
    )


def _candidates(value: object, path: Path, line: int | None, errors: _Collector) -> int | None:
    """``candidates: N`` in a task file: best of N for that WP (1: one attempt), at most the farm's maximum."""
    if value is None:
        return None
    most = settings.MAX_CANDIDATES
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        errors.add(path, line, f"candidates '{str(value)[:20]}' must be a whole number from 1 to {most} "
                               "(AGILEPLUS_MAX_CANDIDATES)")
        return None
    return value


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
