"""The merge queue against serialized re-checking, same run: N approved WPs whose review check is a
real pytest suite with a 2 s test, one of them breaking the suite only in combination with an
earlier one (it calls a function whose signature that WP changed). Wall time from the first
approval to the last merge; then every commit of main's first-parent history is checked out and
its suite run again (sleep off) to count failing trees.

Baseline: `merge.queue: {batch_max: 1}` = re-run the checks on main + one branch, merge, next.
Usage: .venv/bin/python bench/bench_merge_queue.py [--quick] [--sizes 5,10,20]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import Figure, emit, is_quick  # noqa: E402

QUICK = is_quick()
CHECK_SECONDS = 2
BATCH_MAX = 8
PY = sys.executable
SUITE = f"{PY} -m pytest -q -p no:cacheprovider -x tests"
FILES = {
    "calc/__init__.py": "",
    "calc/core.py": "def add(a: int, b: int) -> int:\n    return a + b\n",
    "tests/__init__.py": "",
    "tests/test_core.py": "from calc.core import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    # The suite's slow part: a test that sleeps (the env var lets the history walk skip it).
    "tests/test_slow.py": "import os\nimport time\n\n\ndef test_slow():\n"
                          "    time.sleep(float(os.environ.get('SLOW_SECONDS', '0')))\n",
}
SIGNATURE = {"calc/core.py": "def add(values: list[int]) -> int:\n    return sum(values)\n",
             "tests/test_core.py": "from calc.core import add\n\n\ndef test_add():\n    assert add([2, 3]) == 5\n"}


def sizes() -> list[int]:
    if "--sizes" in sys.argv:
        return [int(n) for n in sys.argv[sys.argv.index("--sizes") + 1].split(",")]
    return [5, 10] if QUICK else [5, 10, 20]


def _django(data_dir: str) -> None:
    os.environ["AGILEPLUS_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agileplus.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@localhost",
                               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@localhost"}).stdout.strip()


def wp_change(i: int, n: int) -> dict[str, str]:
    """WP02 changes add()'s signature; the WP in the middle calls the old one: the one breaker."""
    if i == 2:
        return SIGNATURE
    body = f"def f{i}(x: int) -> int:\n    return x + {i}\n"
    if i == n // 2 + 1:
        body = f"from calc.core import add\n\n\ndef f{i}(x: int) -> int:\n    return add(x, {i})\n"
    return {f"calc/m{i}.py": body,
            f"tests/test_m{i}.py": f"from calc.m{i} import f{i}\n\n\ndef test_f{i}():\n    assert f{i}(1) == {1 + i}\n"}


def make_origin(root: Path, slug: str, n: int) -> Path:
    root.mkdir(parents=True)
    origin, work = root / "origin.git", root / "work"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=root)
    git("clone", "-q", str(origin), str(work), cwd=root)
    for name, text in FILES.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("checkout", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "initial", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    for i in range(1, n + 1):
        code = f"WP{i:02d}"
        git("checkout", "-q", "-B", f"feat/{slug}-{code}", "main", cwd=work)
        for name, text in wp_change(i, n).items():
            (work / name).write_text(text)
        git("add", "-A", cwd=work)
        git("commit", "-qm", f"feat({code}): change", cwd=work)
        git("push", "-q", "origin", f"feat/{slug}-{code}", cwd=work)
    return origin


def run(root: Path, n: int, batch_max: int) -> tuple[float, int, int, int]:
    """(seconds first approval → last merge, merged, ejected, failing trees in main's history)."""
    from agileplus.features.lifecycles import WPState
    from agileplus.features.models import Feature, Project, WorkPackage
    from agileplus.features.services import transition_wp
    from agileplus.review.merge_queue import enqueue, process_queue
    from agileplus.review.models import MergeQueueEntry

    slug = f"{n:03d}-bench-{batch_max}"
    origin = make_origin(root, slug, n)
    checks = [{"name": "tests", "parser": "pytest", "timeout": 120, "command": SUITE,
               "env": {"SLOW_SECONDS": str(CHECK_SECONDS)}}]
    project = Project.objects.create(name=f"bench-{n}-{batch_max}", repo_url=str(origin),
                                     config={"merge": {"queue": {"batch_max": batch_max}},
                                             "review": {"checks": checks}})
    feature = Feature.objects.create(project=project, slug=slug, number=n * 100 + batch_max, title="bench")
    wps = [WorkPackage.objects.create(feature=feature, code=f"WP{i:02d}", title=f"change {i}") for i in range(1, n + 1)]
    for wp in wps:
        transition_wp(wp, WPState.DOING, actor="human:bench")
        transition_wp(wp, WPState.FOR_REVIEW, actor="human:bench")
    start = time.perf_counter()
    for wp in wps:  # the approvals, as the reviews finish
        enqueue(wp, actor="ci:automation", send_back=False)
    process_queue(str(origin))
    seconds = time.perf_counter() - start
    states = list(MergeQueueEntry.objects.filter(feature=feature).values_list("state", flat=True))
    return seconds, states.count("merged"), states.count("ejected"), failing_trees(root, origin)


def failing_trees(root: Path, origin: Path) -> int:
    """Every commit main's first-parent history holds, checked out and its suite run."""
    failing = 0
    for i, sha in enumerate(git("rev-list", "--first-parent", "main", cwd=origin).splitlines()):
        tree = root / f"tree-{i}"
        tree.mkdir()
        subprocess.run(f"git -C {origin} archive {sha} | tar -x -C {tree}", shell=True, check=True)
        failing += subprocess.run(SUITE, shell=True, cwd=tree, capture_output=True,
                                  env={**os.environ, "SLOW_SECONDS": "0"}).returncode != 0
    return failing


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="ap-bench-mq-"))
    _django(str(base / "data"))
    figures = []
    for n in sizes():
        serial = run(base / f"serial-{n}", n, 1)
        queue = run(base / f"queue-{n}", n, BATCH_MAX)
        ratio = serial[0] / queue[0]
        print(f"{n:>3} WPs (1 breaking), check {CHECK_SECONDS}s: serialized {serial[0]:6.1f}s "
              f"({serial[1]} merged, {serial[2]} ejected, {serial[3]} failing trees on main) | queue "
              f"{queue[0]:6.1f}s ({queue[1]} merged, {queue[2]} ejected, {queue[3]} failing trees) | {ratio:.1f}x")
        figures.append(Figure(f"merge queue, {n} approved WPs (1 breaking), {CHECK_SECONDS}s check: first approval "
                              "→ last merge", round(queue[0], 1), "s",
                              baseline="serialized re-check (batch_max 1), same run",
                              baseline_value=round(serial[0], 1),
                              unit_baseline="s", note=f"{ratio:.1f}x faster; failing trees on main: queue {queue[3]}, "
                                                      f"serialized {serial[3]}; aim >= 3x with 0"))
    emit("merge_queue", figures)


if __name__ == "__main__":
    main()
