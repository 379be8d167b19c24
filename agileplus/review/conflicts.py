"""Conflict prediction before dispatch.

Two sources: the WPs' declared owned paths (known before any agent runs), and, for WPs whose
branches are already on the origin, a `git merge-tree` of each pair (what merging both into
main would do). Auto-dispatch serializes WPs predicted to conflict (``conflict_policy:
serialize``, the default) or only flags them (``warn``); `status` shows the predictions.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Dependency, Feature, WorkPackage, wp_branch_name
from agileplus.review.merge import workspace
from harnesses.git import git

POLICIES = ("serialize", "warn")
OPEN_STATES = (WPState.PLANNED, WPState.DOING, WPState.FOR_REVIEW, WPState.BLOCKED)


@dataclass
class PredictedConflict:
    a: str
    b: str
    source: str  # owned_paths | merge_tree
    paths: list[str] = field(default_factory=list)

    def describe(self) -> str:
        how = "both own" if self.source == "owned_paths" else "their branches conflict in"
        return f"{self.a} ↔ {self.b}: {how} {', '.join(self.paths[:5])}"

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "source": self.source, "paths": self.paths}


def _overlaps(a: str, b: str) -> bool:
    a, b = a.strip().rstrip("*"), b.strip().rstrip("*")
    if not a or not b:
        return False
    return a == b or (a.endswith("/") and b.startswith(a)) or (b.endswith("/") and a.startswith(b))


def owned_overlap(a: list[str], b: list[str]) -> list[str]:
    return sorted({min(x, y, key=len) for x in a for y in b if _overlaps(x, y)})


def policy(feature: Feature) -> str:
    value = (feature.agent_config or {}).get("conflict_policy") or "serialize"
    return value if value in POLICIES else "serialize"


class _OpenWP(NamedTuple):
    code: str
    state: str
    owned_paths: list
    fresh_branch: str = ""


def _folders_of(path: str) -> list[str]:
    """``src/a/b.py`` → ``["src/", "src/a/"]`` (and the path itself when it is a folder)."""
    return [path[:i + 1] for i, char in enumerate(path) if char == "/"]


def declared_conflicts(wps: list[WorkPackage]) -> list[PredictedConflict]:
    """Pairs of WPs whose owned paths overlap. Candidates come from an index of paths and their
    folders (near-linear: a 10,000-WP feature is not 50 million pair comparisons); each candidate
    pair is then checked with ``owned_overlap`` as before."""
    ordered = sorted(wps, key=lambda w: w.code)
    owners: dict[str, set[int]] = {}
    for index, wp in enumerate(ordered):
        for raw in wp.owned_paths or []:
            path = raw.strip().rstrip("*")
            if path:
                owners.setdefault(path, set()).add(index)
    candidates: set[tuple[int, int]] = set()
    for path, holders in owners.items():
        related = set(holders)
        for folder in _folders_of(path):
            related |= owners.get(folder, set())
        for a in holders:
            candidates.update((min(a, b), max(a, b)) for b in related if b != a)
    found = []
    for i, j in sorted(candidates):
        a, b = ordered[i], ordered[j]
        paths = owned_overlap(list(a.owned_paths or []), list(b.owned_paths or []))
        if paths:
            found.append(PredictedConflict(a.code, b.code, "owned_paths", paths))
    return found


def branch_conflicts(feature: Feature, wps: list[_OpenWP]) -> list[PredictedConflict]:
    """`git merge-tree` of each pair of branches already on the origin (in the merge workspace)."""

    path = workspace(feature.project.repo_url)
    heads = {}
    for wp in wps:
        ref = f"refs/remotes/origin/{wp_branch_name(feature.slug, wp.code, wp.fresh_branch)}"
        if git("rev-parse", "--verify", "--quiet", ref, cwd=path, check=False):
            heads[wp.code] = ref
    found = []
    for a, b in itertools.combinations(sorted(heads), 2):
        out = git("merge-tree", "--write-tree", "--name-only", "--no-messages", heads[a], heads[b], cwd=path,
                  check=False)
        lines = out.splitlines()
        if len(lines) > 1:  # first line is the tree; conflicted paths follow
            found.append(PredictedConflict(a, b, "merge_tree", sorted(set(lines[1:]))))
    return found


def predicted_conflicts(feature: Feature, *, with_branches: bool = True) -> list[PredictedConflict]:
    # plain rows, not model instances: a 10,000-WP feature is read on every board refresh
    wps = [_OpenWP(*row) for row in feature.work_packages.filter(state__in=OPEN_STATES)
           .values_list("code", "state", "owned_paths", "fresh_branch")]
    found = declared_conflicts(wps)
    if with_branches:
        with contextlib.suppress(Exception):  # no origin reachable: predictions from declarations only
            found += branch_conflicts(feature, [w for w in wps if w.state in (WPState.DOING, WPState.FOR_REVIEW)])
    if not found:
        return []
    parents = _parents(feature)
    return [c for c in found if not _depends_on(parents, c.a, c.b) and not _depends_on(parents, c.b, c.a)]


def _parents(feature: Feature) -> dict[str, set[str]]:

    parents: dict[str, set[str]] = {}
    for wp, dep in Dependency.objects.filter(wp__feature=feature).values_list("wp__code", "depends_on__code"):
        parents.setdefault(wp, set()).add(dep)
    return parents


def _depends_on(parents: dict[str, set[str]], wp: str, ancestor: str) -> bool:
    """Whether ``ancestor`` is on a dependency path of ``wp`` (such a pair never runs at the same
    time). One walk per predicted conflict, not the closure of every pair: a 10,000-WP chain has
    50 million (WP, ancestor) pairs."""
    stack, seen = list(parents.get(wp, ())), set()
    while stack:
        current = stack.pop()
        if current == ancestor:
            return True
        if current not in seen:
            seen.add(current)
            stack.extend(parents.get(current, ()))
    return False


def held_back(feature: Feature, candidates: list[WorkPackage]) -> dict[str, str]:
    """WPs not to queue now (serialize policy): code → the busy WP it would conflict with."""
    if policy(feature) != "serialize":
        return {}
    busy_ids = set(DispatchJob.objects.filter(feature=feature, state__in=JobState.ACTIVE).values_list("wp_id",
                                                                                                    flat=True))
    busy = [w for w in feature.work_packages.all() if w.pk in busy_ids or w.state == WPState.FOR_REVIEW]
    held: dict[str, str] = {}
    chosen: list[WorkPackage] = []
    for wp in candidates:
        blocker = next((o.code for o in busy + chosen if o.pk != wp.pk
                        and owned_overlap(list(wp.owned_paths or []), list(o.owned_paths or []))), None)
        if blocker:
            held[wp.code] = blocker
        else:
            chosen.append(wp)
    return held
