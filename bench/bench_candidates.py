"""Best of N with scripted agents of known quality, on 3 real workers (embedded broker, SQLite).

Each round runs one WP of a small real Python project (its review runs the project's pytest) twice,
on the same 3 workers:
1. ``implement --wp WP01 --candidates 3`` (quorum best_of_finished, grace 5 s): the three
   candidates are, in an order shuffled per round, one that breaks the tests, one that passes with
   a large diff and one that passes with a small diff (the best), each working 1-3 s (random);
2. the baseline, in the same run: ``implement --wp WP01`` of a copy of the project, one attempt
   (the small candidate's work), to the same point: the WP for_review.

Figures: how often the farm chose the best candidate, and the wall time to for_review of a
3-candidate round against the single attempt (medians).
Usage: .venv/bin/python bench/bench_candidates.py [--quick] [--rounds N] (default 20; --quick: 2)
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick, percentile  # noqa: E402
from _farm import ROOT, setup  # noqa: E402

ROUNDS = 2 if is_quick() else 20
BROKEN = {"calc/core.py": "def add(a: int, b: int) -> int:\n    return a - b\n"}
LARGE = {"calc/extra.py": "".join(f"def f{i}(x: int) -> int:\n    return x + {i}\n\n\n" for i in range(60))}


def behaviours(root: Path, rng: random.Random) -> tuple[dict[str, str], int]:
    """Scripted candidates in a shuffled order; returns their behaviours and the best one's index.
    Their changes are under ``sources/``, which every sandbox mounts read-only (``main``)."""
    kinds = ["broken", "large", "small"]
    rng.shuffle(kinds)
    env = {}
    for index, kind in enumerate(kinds, 1):
        work = f"sleep:{rng.uniform(1, 3):.2f},commit:1"
        if kind != "small":
            source = root.parent / "sources" / f"{root.name}-{kind}-{index}"
            for path, text in (BROKEN if kind == "broken" else LARGE).items():
                (source / path).parent.mkdir(parents=True, exist_ok=True)
                (source / path).write_text(text)
            work += f",apply:{source}"
        env[f"AGENT_BEHAVIOUR_C{index}"] = work
    return env, kinds.index("small") + 1


def project(root: Path, slug: str, environment: dict[str, str]):
    from tests.support.farm import CALC_PROJECT, PYTEST_CHECK, import_target, make_target_repo

    review = {"checks": [{"name": "deliverables"}, PYTEST_CHECK, {"name": "governance"},
                         {"name": "commit_convention"}]}
    repo = make_target_repo(root, wps={"WP01": []}, files=CALC_PROJECT, review=review, slug=slug,
                            owned={"WP01": ["wp01/", "calc/", "tests/"]}, environment=environment,
                            agent={"candidates": {"grace_seconds": 5}} if "AGENT_BEHAVIOUR_C1" in environment else None)
    return import_target(repo)


def implement_to_for_review(feature, env: dict[str, str], *extra: str) -> float:
    """``implement --wp WP01`` as a person runs it; seconds from its start to WP01 for_review (polled
    while it runs: the CLI itself goes on to tidy up, e.g. to set the other candidates aside)."""
    from tests.support.farm import wait_until

    start = time.perf_counter()
    cli = subprocess.Popen([sys.executable, "-m", "agileplus", "implement", feature.slug, "--wp", "WP01", *extra,
                            "--actor", "human:bench"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    wait_until(lambda: feature.work_packages.get(code="WP01").state == "for_review", timeout=300, every=0.05,
               what=f"{feature.slug} WP01 for_review")
    wall = time.perf_counter() - start
    out, _ = cli.communicate(timeout=300)
    if cli.returncode != 0:
        raise SystemExit(f"implement {feature.slug} failed:\n{out[-3000:]}")
    return wall


def one_round(folder: Path, index: int, rng: random.Random, env: dict[str, str]) -> tuple[bool, float, float]:
    from agileplus.workflow.models import CandidateRound

    root = folder / f"round-{index}"
    candidates_env, best = behaviours(root, rng)
    feature = project(root / "n", f"{100 + 2 * index:03d}-best-of-n", candidates_env)
    wall_n = implement_to_for_review(feature, env, "--candidates", "3")
    rnd = CandidateRound.objects.get(feature=feature)
    picked = rnd.winner.result["candidate"]["index"] if rnd.winner else None
    single = project(root / "one", f"{101 + 2 * index:03d}-one-attempt",
                     {"AGENT_BEHAVIOUR": candidates_env[f"AGENT_BEHAVIOUR_C{best}"]})
    wall_one = implement_to_for_review(single, env)
    print(f"round {index + 1}: best c{best}, picked c{picked} ({rnd.why or rnd.state}); "
          f"3 candidates {wall_n:.1f}s, one attempt {wall_one:.1f}s")
    print_timeline(rnd)
    return picked == best, wall_n, wall_one


def print_timeline(rnd) -> None:
    """Where a round's time went: each candidate's job, its score, the choice, at +s from the round."""
    from agileplus.audit.models import AuditEntry

    start = rnd.created_at
    steps = []
    for c in rnd.candidates.select_related("job"):
        job = c.job
        steps += [(at, f"c{c.index} {what}") for at, what in ((job.claimed_at, "claimed"), (job.started_at, "started"),
                                                               (job.finished_at, f"{job.state}"),
                                                               (c.scored_at, "scored")) if at]
    steps += [(e.timestamp, e.transition.split(":", 1)[1]) for e in AuditEntry.objects.filter(
        wp=rnd.wp, transition__in=[f"{rnd.wp.code}:candidate_chosen", f"{rnd.wp.code}:doing->for_review"])]
    print("   " + ", ".join(f"{what} +{(at - start).total_seconds():.1f}" for at, what in sorted(steps)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    rounds = parser.parse_args().rounds
    folder = setup("candidates")
    os.environ["AGILEPLUS_SANDBOX_READONLY"] += os.pathsep + str(folder / "sources")  # the agents read their change
    from tests.support.farm import job_env, running_workers

    rng = random.Random(31)
    env = job_env(folder / "cli", None, AGILEPLUS_BROKER_DIR=str(folder / "broker"))
    results = []
    with running_workers(folder, 3, broker_url=None):
        for i in range(rounds):
            results.append(one_round(folder, i, rng, env))
    best = sum(1 for ok, _, _ in results if ok) / len(results) * 100
    wall_n = percentile([n for _, n, _ in results], 50)
    wall_one = percentile([one for _, _, one in results], 50)
    emit("candidates", [
        Figure("best candidate chosen (3 candidates: fails tests / large diff / small diff)", round(best, 1), "%",
               note=f"{len(results)} round(s); aim ≥ 95%"),
        Figure("3 candidates on 3 workers to for_review (median)", round(wall_n, 2), "s",
               "one attempt to for_review, same run (median)", round(wall_one, 2), "s",
               note="includes scoring: the review's checks on main merged with each candidate; aim ≤ 1.3x"),
    ])


if __name__ == "__main__":
    main()
