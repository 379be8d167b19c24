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

from agileplus.dispatch.models import DispatchJob, JobState
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Dependency, Feature, WorkPackage
from agileplus.review.merge import workspace
from harnesses.git import branch_name, git

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


def declared_conflicts(wps: list[WorkPackage]) -> list[PredictedConflict]:
    found = []
    for a, b in itertools.combinations(sorted(wps, key=lambda w: w.code), 2):
        paths = owned_overlap(list(a.owned_paths or []), list(b.owned_paths or []))
        if paths:
            found.append(PredictedConflict(a.code, b.code, "owned_paths", paths))
    return found


def branch_conflicts(feature: Feature, wps: list[WorkPackage]) -> list[PredictedConflict]:
    """`git merge-tree` of each pair of branches already on the origin (in the merge workspace)."""

    path = workspace(feature.project.repo_url)
    heads = {}
    for wp in wps:
        ref = f"refs/remotes/origin/{branch_name(feature.slug, wp.code)}"
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
    wps = list(feature.work_packages.filter(state__in=OPEN_STATES))
    found = declared_conflicts(wps)
    if with_branches:
        with contextlib.suppress(Exception):  # no origin reachable: predictions from declarations only
            found += branch_conflicts(feature, [w for w in wps if w.state in (WPState.DOING, WPState.FOR_REVIEW)])
    ordered = _ordered_pairs(feature)
    return [c for c in found if (c.a, c.b) not in ordered and (c.b, c.a) not in ordered]


def _ordered_pairs(feature: Feature) -> set[tuple[str, str]]:
    """(WP, ancestor) for every dependency path: such pairs never run at the same time."""

    parents: dict[str, set[str]] = {}
    for wp, dep in Dependency.objects.filter(wp__feature=feature).values_list("wp__code", "depends_on__code"):
        parents.setdefault(wp, set()).add(dep)
    pairs = set()
    for wp in parents:
        stack, seen = list(parents[wp]), set()
        while stack:
            anc = stack.pop()
            if anc not in seen:
                seen.add(anc)
                pairs.add((wp, anc))
                stack.extend(parents.get(anc, ()))
    return pairs


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
