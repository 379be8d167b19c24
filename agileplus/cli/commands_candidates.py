"""`candidates` (best of N's score cards) and the candidate path of `implement --candidates N`."""

from __future__ import annotations

import time

import click

from agileplus.cli.context import json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json
from agileplus.core.errors import NotFound
from agileplus.dispatch.models import JobState
from agileplus.dispatch.runner import run_job
from agileplus.features.models import WorkPackage
from agileplus.features.services import get_feature, get_wp
from agileplus.workflow import candidates as rounds
from agileplus.workflow.models import CandidateRound
from agileplus.workflow.selectors import latest_round, round_summary, rounds_of

POLL = 0.5


def implement_candidates(wp: WorkPackage, *, count: int | None, agents: str | None, harness: str | None,
                         quorum: str | None, actor, timeout: int | None, retries: int | None, inline: bool,
                         wait: bool | None, as_json: bool) -> None:
    """`implement --wp WPnn --candidates N`: queue the round, then (inline, or following the
    workers) show the score cards once a candidate is chosen."""
    names = [a.strip() for a in agents.split(",") if a.strip()] if agents else ([harness] if harness else None)
    plan = rounds.plan_candidates(wp, count=count, harnesses=names, quorum=quorum)
    rnd = rounds.start_candidates(wp, actor=actor, plan=plan, timeout_seconds=timeout, retries=retries,
                                  send=not inline)
    summary = round_summary(rnd)
    if not as_json:
        echo(f"Dispatching {wp.code} to {len(summary['candidates'])} candidates "
             f"(quorum {rnd.quorum}, grace {rnd.grace_seconds} s):")
        for c in summary["candidates"]:
            echo(f"  c{c['index']} → {c['harness']} (job {c['job_id']}) on {c['branch']}")
        if rnd.note:
            echo(f"  {rnd.note}")
    if inline:
        run_inline(rnd)
    elif wait is False:
        if as_json:
            echo_json(summary)
        else:
            echo(f"Watch it: agileplus candidates {wp.feature.slug} {wp.code}")
        return
    else:
        wait_decided(rnd.pk)
    rnd.refresh_from_db()
    show(rnd, as_json=as_json)
    if rnd.state != CandidateRound.CHOSEN:
        raise SystemExit(1)


def run_inline(rnd: CandidateRound) -> None:
    """Here there is no other worker: the candidates run one after another, each scored as it ends,
    until the round is decided (its quorum met: the rest are stopped before they start)."""
    for candidate in rnd.candidates.order_by("index"):
        while run_job(candidate.job_id) == JobState.QUEUED:
            pass
        rounds.score_candidate(candidate.job_id)
    rounds.reconcile_rounds()


def wait_decided(round_id: int) -> None:
    while True:
        rnd = CandidateRound.objects.get(pk=round_id)
        if rnd.state != CandidateRound.RUNNING and rnd.settled_at is not None:
            return
        time.sleep(POLL)


@cli.command()
@click.argument("feature_ref", metavar="FEATURE")
@click.argument("wp_code", metavar="WP")
@click.option("--all-rounds", is_flag=True, help="Every round of the WP, not only the latest")
@json_option
def candidates(feature_ref, wp_code, all_rounds, as_json) -> None:
    """A WP's candidates (best of N): each one's score card, rank and outcome."""
    wp = get_wp(get_feature(feature_ref), wp_code)
    chosen = rounds_of(wp) if all_rounds else [r for r in [latest_round(wp)] if r]
    if not chosen:
        raise NotFound(f"{wp.code} has run no candidates", field="wp",
                       fix=f"agileplus implement {wp.feature.slug} --wp {wp.code} --candidates 3")
    if as_json:
        echo_json([round_summary(r) for r in chosen] if all_rounds else round_summary(chosen[0]))
        return
    for rnd in chosen:
        show(rnd)


def show(rnd: CandidateRound, *, as_json: bool = False) -> None:
    summary = round_summary(rnd)
    if as_json:
        echo_json(summary)
        return
    for line in card_lines(summary):
        echo(line)


def card_lines(summary: dict) -> list[str]:
    """The score cards as a table, the choice above it."""
    head = f"Candidates for {summary['wp']} (round {summary['round']}, {summary['quorum']}): "
    if summary["state"] == CandidateRound.CHOSEN:
        head += f"c{summary['winner']} chosen, {summary['why']}"
    elif summary["state"] == CandidateRound.NONE_PASSED:
        head += f"none passed every check; {summary['wp']} is blocked for a person"
    else:
        head += "running"
    lines = [head, f"  {'':3} {'agent':12} {'state':10} {'checks':7} {'tests':7} {'deliv.':6} "
                   f"{'diff':>6} {'files':>5} {'cost':>9} {'rank':>4}  outcome"]
    for c in summary["candidates"]:
        card = c["score"] or {}
        checks = card.get("checks") or []
        passed = sum(1 for x in checks if x["ok"])
        tests = f"{card['tests_passed']}/{card['tests_total']}" if card.get("tests_total") is not None else "-"
        lines.append(
            f"  c{c['index']:<2} {c['harness'][:12]:12} {c['job_state'][:10]:10} "
            f"{(('✓ ' if card.get('passed') else '✗ ') + f'{passed}/{len(checks)}') if checks else '-':7} "
            f"{tests:7} {('✓' if card.get('deliverables') else '✗') if card else '-':6} "
            f"{card.get('diff_lines') if card.get('diff_lines') is not None else '-':>6} "
            f"{card.get('files') if card.get('files') is not None else '-':>5} ${c['cost_usd']:>8} "
            f"{c['rank'] or '-':>4}  {c['outcome'] or '-'}")
    cost = summary["cost"]
    lines.append(f"  Spend: ${cost['winner_usd']} on the winner, ${cost['others_usd']} on the others")
    salvaged = [c["salvage_ref"] for c in summary["candidates"] if c["salvage_ref"]]
    if salvaged:
        lines.append(f"  The others' branches: {', '.join(salvaged)}")
    return lines
