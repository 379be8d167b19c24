"""Conflict prediction from owned paths finds exactly the pairs a comparison of every pair finds,
without comparing every pair (a 10,000-WP feature stays fast)."""

from __future__ import annotations

import itertools
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from agileplus.features.models import WorkPackage
from agileplus.review.conflicts import declared_conflicts, owned_overlap

SEGMENTS = st.sampled_from(["src", "a", "b", "lib", "x.py", "tests"])
PATHS = st.builds(lambda parts, folder, star: "/".join(parts) + ("/" if folder else "") + ("*" if star else ""),
                  st.lists(SEGMENTS, min_size=1, max_size=3), st.booleans(), st.booleans())


def _every_pair(wps):
    found = []
    for a, b in itertools.combinations(sorted(wps, key=lambda w: w.code), 2):
        paths = owned_overlap(list(a.owned_paths), list(b.owned_paths))
        if paths:
            found.append((a.code, b.code, paths))
    return found


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(PATHS, max_size=4), min_size=0, max_size=8))
def test_the_index_finds_the_same_pairs_as_comparing_every_pair(owned):
    wps = [WorkPackage(code=f"WP{i:02d}", owned_paths=paths) for i, paths in enumerate(owned, start=1)]
    assert [(c.a, c.b, c.paths) for c in declared_conflicts(wps)] == _every_pair(wps)


def test_ten_thousand_wps_with_their_own_folders_are_checked_in_well_under_a_second():
    wps = [WorkPackage(code=f"WP{i:05d}", owned_paths=[f"src/m{i}/", f"tests/m{i}/"]) for i in range(10_000)]
    wps.append(WorkPackage(code="WP99999", owned_paths=["src/m7/x.py"]))
    started = time.perf_counter()
    found = declared_conflicts(wps)
    assert time.perf_counter() - started < 5  # generous: a few hundred ms here, minutes before
    assert [(c.a, c.b) for c in found] == [("WP00007", "WP99999")]
