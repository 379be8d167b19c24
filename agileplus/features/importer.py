"""Importing features from a target repository (``kitty-specs/<slug>/``).

Layout::

    <repo>/.kittify/config.yaml            optional: agent, constraints, commit convention
    <repo>/kitty-specs/<slug>/spec.md       required
    <repo>/kitty-specs/<slug>/plan.md       required once there are tasks
    <repo>/kitty-specs/<slug>/tasks/WP01-<name>.md   YAML front matter + the WP's plan

Everything is parsed and checked before the database is touched (``import_specs``, within the
bounds of ``import_limits``); this module writes, and the whole import is one transaction: a bad
file leaves the database as it was.

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

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from agileplus.core.actors import Actor, parse_actor
from agileplus.core.errors import DomainError, ImportFailed
from agileplus.features import dag
from agileplus.features.import_limits import _Collector
from agileplus.features.import_specs import FeatureSpec, RepoConfig, discover, parse_config, parse_feature_dir
from agileplus.features.lifecycles import FeatureState, WPState
from agileplus.features.models import Dependency, Feature, Project, WorkPackage
from agileplus.features.services import transition_feature, transition_wp
from harnesses.git import GitError, checked_out_push_fix, git, redact_url

# The path from planned to each lane a new WP may be imported in.
LANE_PATHS = {
    WPState.PLANNED: (),
    WPState.DOING: (WPState.DOING,),
    WPState.FOR_REVIEW: (WPState.DOING, WPState.FOR_REVIEW),
    WPState.DONE: (WPState.DOING, WPState.FOR_REVIEW, WPState.DONE),
    WPState.BLOCKED: (WPState.BLOCKED,),
}


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
            "candidates": wp_spec.candidates, "source_path": str(wp_spec.path),
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
