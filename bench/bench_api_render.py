"""Rendering a feature's status through its response serializer (``api/output/features.py``:
``FeatureStatusOut``), the one definition of the shape: 200 WPs in a chain, each with a finished
job and a commit, on SQLite.

Figure: rendering a built status through the serializer (what GET /api/features/<slug> adds
by rendering with it rather than returning the dict). Baseline: building that status
(``features.selectors.feature_status``, its queries included), in the same run.
Usage: .venv/bin/python bench/bench_api_render.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick  # noqa: E402
from _farm import setup  # noqa: E402

QUICK = is_quick()
WPS = 200
ROUNDS = 5 if QUICK else 30


def busy_feature():
    from django.utils import timezone

    from agileplus.dispatch.models import DispatchJob, JobCommit
    from tests.factories import make_large_feature

    feature = make_large_feature(WPS)
    now = timezone.now()
    jobs = DispatchJob.objects.bulk_create(
        [DispatchJob(id=f"job_{wp.code.lower()}", feature=feature, wp=wp, harness="claude-code", state="succeeded",
                     requested_by="human:bench", started_at=now, finished_at=now, session_id=f"s-{wp.code}")
         for wp in feature.work_packages.all()])
    JobCommit.objects.bulk_create([JobCommit(job=job, sha="a" * 40, message="feat: change", files=["src/x.py"])
                                   for job in jobs])
    return feature


def median_ms(fn) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    setup("api-render")
    from agileplus.api.output import FeatureStatusOut
    from agileplus.features.selectors import feature_status

    feature = busy_feature()

    def status() -> dict:  # as the view builds it (one page of up to 200 WPs, plus the cost)
        return {**feature_status(feature, after="", limit=200), "cost_usd": "0"}

    built_once = status()
    _ = FeatureStatusOut(built_once).data  # warm: the serializer's fields are built once per class
    built = median_ms(status)
    rendered = median_ms(lambda: FeatureStatusOut(built_once).data)
    emit("api_render", [Figure(f"render a feature status of {WPS} WPs through its serializer (median)",
                               round(rendered, 2), "ms", baseline="build that status (the selector, same run)",
                               baseline_value=round(built, 2), note=f"{ROUNDS} rounds; SQLite")])


if __name__ == "__main__":
    main()
