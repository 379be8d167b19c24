"""Property-based fuzz of the importer: random feature folders (YAML with anchors and aliases,
symlinks, huge and odd numbers, junk owned paths) either import or are refused with an
ImportFailed naming a file; never another exception, and a refused import leaves nothing behind."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agileplus.audit.models import AuditEntry
from agileplus.core.errors import ImportFailed
from agileplus.events.models import Event
from agileplus.features.importer import import_features
from agileplus.features.models import Dependency, Feature, Project, WorkPackage

pytestmark = pytest.mark.django_db

NUMBERS = st.one_of(st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_nan=True),
                    st.sampled_from(["1e400", ".inf", ".nan", "99999999999999999999999999 days", "3 days", "-1",
                                     "0x10", "1_000", "2 weeks", ""]))
PATHS = st.one_of(st.sampled_from(["src/", "../../etc/", "/etc/passwd", "", "src/../x", "a//b/./c", "C:/x",
                                   "tests/unit/", "~/.ssh/"]),
                  st.text(alphabet="abc/.\\~-", max_size=12))
WP_FIELDS = st.fixed_dictionaries({}, optional={
    "title": st.one_of(st.text(max_size=40), st.integers(), st.just("T" * 400)),
    "dependencies": st.one_of(st.lists(st.sampled_from(["WP01", "WP02", "WP03", "WP9", "x"]), max_size=4),
                              st.text(max_size=5), st.integers()),
    "estimate": NUMBERS,
    "owned_files": st.one_of(st.lists(PATHS, max_size=4), PATHS, st.integers()),
    "deliverables": st.one_of(st.lists(st.text(max_size=10), max_size=3), st.none()),
    "lane": st.sampled_from(["planned", "doing", "done", "blocked", "for_review", "nonsense", ""]),
})
CONFIG = st.fixed_dictionaries({}, optional={
    "agent": st.fixed_dictionaries({}, optional={"timeout_seconds": NUMBERS, "retries": NUMBERS,
                                                 "budget": st.dictionaries(st.sampled_from(["job_usd", "wp_usd",
                                                                                            "bogus"]), NUMBERS)}),
    "constraints": st.fixed_dictionaries({}, optional={"max_file_size": NUMBERS,
                                                       "allowed_paths": st.lists(PATHS, max_size=3)}),
})
ANCHORED = st.sampled_from([
    "",
    "base: &b {x: 1}\nmore:\n  <<: *b\n",
    "a: &a [1, 2, 3]\nb: [*a, *a, *a]\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
    "loop: &l [*l]\n",
    "bad: [unclosed\n",
])
LINKS = st.sets(st.sampled_from(["spec.md", "tasks", "tasks/WP01.md", ".kittify", "plan.md"]), max_size=2)


def _write(root: Path, wps: list[dict], config: dict, extra_yaml: str, links: set[str], outside: Path) -> set[str]:
    """Write the folder; returns the names actually replaced by a symlink (a WP file may not exist)."""
    feature = root / "kitty-specs" / "042-fuzz"
    (feature / "tasks").mkdir(parents=True)
    (feature / "spec.md").write_text("# Fuzz\n")
    (feature / "plan.md").write_text("# Plan\n")
    for index, fields in enumerate(wps, start=1):
        front = yaml.safe_dump({"work_package_id": f"WP{index:02d}", **fields}) + extra_yaml * (index == 1)
        (feature / "tasks" / f"WP{index:02d}.md").write_text(f"---\n{front}---\n# WP{index:02d}\n")
    (root / ".kittify").mkdir()
    (root / ".kittify" / "config.yaml").write_text(yaml.safe_dump(config) + extra_yaml)
    linked = set()
    for name in links:
        target = feature / name if not name.startswith(".") else root / name
        if not target.exists():
            continue
        moved = outside / name.replace("/", "_")
        shutil.move(target, moved)
        target.symlink_to(moved)
        linked.add(name)
    return linked


def _snapshot() -> tuple:
    return tuple(m.objects.count() for m in (Project, Feature, WorkPackage, Dependency, AuditEntry, Event))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(wps=st.lists(WP_FIELDS, min_size=0, max_size=3), config=CONFIG, extra_yaml=ANCHORED, links=LINKS)
def test_any_folder_imports_or_is_refused_cleanly(wps, config, extra_yaml, links):
    with transaction.atomic():  # each example starts from the same database
        _check_one_folder(wps, config, extra_yaml, links)
        transaction.set_rollback(True)


def _check_one_folder(wps, config, extra_yaml, links) -> None:
    with tempfile.TemporaryDirectory(prefix="ap-fuzz-") as tmp:
        root, outside = Path(tmp) / "repo", Path(tmp) / "outside"
        root.mkdir()
        outside.mkdir()
        linked = _write(root, wps, config, extra_yaml, links, outside)
        before = _snapshot()
        try:
            report = import_features(root, actor="human:fuzz")
        except ImportFailed as exc:
            event("refused")
            assert exc.field and _snapshot() == before
            return
        event("imported")
        assert not linked, f"imported through symlinks: {linked}"
        feature = report.features[0]
        assert feature.work_packages.count() == len(wps)
        for owned in feature.work_packages.values_list("owned_paths", flat=True):
            assert all(p and not p.startswith("/") and ".." not in p.split("/") for p in owned)
