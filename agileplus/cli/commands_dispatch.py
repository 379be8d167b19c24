"""`implement`: thin commands over agileplus.dispatch (`jobs`, `logs`: commands_jobs.py; `agents`:
commands_agents.py)."""

from __future__ import annotations

import time

import click

from agileplus.cli.commands_candidates import implement_candidates
from agileplus.cli.context import actor_option, current_actor, json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json
from agileplus.cli.render import fresh_start_lines
from agileplus.core.errors import DomainError
from agileplus.core.text import counted
from agileplus.dispatch import selectors, services
from agileplus.dispatch.fresh import start_fresh
from agileplus.dispatch.models import SETUP_STREAM, JobState
from agileplus.dispatch.runner import run_job
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Feature
from agileplus.features.services import get_feature, get_wp
from agileplus.workflow.candidates import candidates_config
from agileplus.workflow.services import start_feature

HARNESS_TITLES = {"claude-code": "Claude Code", "codex": "Codex", "gemini": "Gemini CLI", "aider": "Aider",
                  "opencode": "opencode", "command": "command"}
POLL = 0.2
def harness_title(name: str) -> str:
    return HARNESS_TITLES.get(name, name)


def _follow(job_id: str, *, until_running: bool = False, quiet: bool = False) -> None:
    """Print the job's log as it grows, until it ends (or starts, with until_running)."""
    seq = 0
    waited = 0.0
    hinted = False
    while True:
        job = selectors.get_job(job_id)
        for line in selectors.log_lines(job, after_seq=seq):
            seq = line.seq
            if not quiet and line.stream in ("agileplus", SETUP_STREAM):
                echo(line.line)
        if job.state == JobState.QUEUED and waited > 5 and not hinted:
            echo("Waiting for a worker to claim the job (start one with `agileplus worker`)...", err=True)
            hinted = True
        if until_running and job.state == JobState.RUNNING or job.state in JobState.FINAL:
            return
        time.sleep(POLL)
        waited += POLL


def _tests_line(job) -> str:
    tests = (job.result or {}).get("tests") or {}
    if tests.get("total") is None:
        return "Tests: not run"
    return f"Tests: {tests.get('passed', 0)}/{tests['total']} passing"


def _print_refusal(job, entry) -> None:
    """Governance refused the work: the agent ended normally, so no exit code; each rule broken
    and the path or commit it was broken at, from the audit entry's evidence."""
    violations = (entry.metadata or {}).get("violations") or []
    echo(f"Governance refused the agent's work ({counted(len(violations), 'violation')}; the agent itself "
         f"exited {job.exit_code}):")
    for v in violations[:10]:
        where = v.get("path") or (v.get("commit") or "")[:7] or "-"
        echo(f"  ✗ {v.get('rule')}: {where}: {v.get('detail')}")
    if len(violations) > 10:
        echo(f"  … and {len(violations) - 10} more (agileplus jobs show {job.id} --json)")
    commits = job.commits.count()
    echo(f"  Commits made: {commits} (none of them reaches main)")


def _print_failure(job) -> None:
    """The example's failure screen, from what was recorded (the job and its audit entry)."""
    code = "-1 (timeout)" if job.state == JobState.TIMED_OUT else str(job.exit_code)
    if job.state == JobState.TIMED_OUT:
        echo(f"Agent session timeout after {job.timeout_seconds} seconds.")
        echo("Capturing partial output...")
    setup_failed = job.started_at is None
    entry = selectors.block_entry(job)
    refused = entry is not None and (entry.metadata or {}).get("reason") == "governance_violation"
    if refused:
        _print_refusal(job, entry)
    else:
        echo("Setup failed before the agent started:" if setup_failed else "Agent failed:")
    if not setup_failed and not refused:
        echo(f"  Exit code: {code}")
        commits = job.commits.count()
        echo(f"  Commits made: {commits}{' (partial work)' if commits else ''}")
        echo(f"  {_tests_line(job)}")
    if entry is not None:
        echo(f"{job.wp.code} moved to Blocked state.")
        echo(f"Audit entry recorded: actor={entry.actor}, transition={entry.transition}")
    echo(f"Reason: {job.error or job.current_activity}")
    echo("Next steps:")
    slug, code_ = job.feature.slug, job.wp.code
    if refused:
        # Its commits can never pass (rewriting them is refused): continuing the branch cannot help.
        echo("  Start over from main on a new branch (this branch is kept on the origin under salvage/):")
        echo(f"    agileplus implement {slug} --wp {code_} --agent {job.harness} --timeout {job.timeout_seconds}"
                   " --fresh")
        return
    if setup_failed:
        echo("  Fix the cause above, then reset and retry:")
    else:
        echo("  Option 1: Review partial commits and continue manually")
        echo(f"    cd {job.worktree}")
        echo("    git log --oneline   # see what was done")
        echo("    # ... continue work, commit ...")
        echo(f"    git push origin HEAD:{job.branch}")
        echo(f"    agileplus wp transition {slug} {code_} --to for_review")
        echo("  Option 2: Retry on this branch (the agent resumes its session where it stopped)")
    echo(f"    agileplus wp transition {slug} {code_} --to planned   # reset")
    echo(f"    agileplus implement {slug} --wp {code_} --agent {job.harness} --timeout {job.timeout_seconds}")
    if not setup_failed:
        echo("  Option 3: Retry with a fresh agent session from main (this branch is kept on the origin under "
             "salvage/)")
        echo(f"    agileplus implement {slug} --wp {code_} --agent {job.harness} --timeout {job.timeout_seconds}"
             " --fresh")


@cli.command()
@click.argument("feature_ref", metavar="FEATURE")
@click.option("--wp", "wp_code", help="Work package to dispatch (e.g. WP02)")
@click.option("--all", "all_ready", is_flag=True, help="Queue every ready WP and drive the feature to done")
@click.option("--agent", "harness", default=None, help="Harness (default: the feature's config)")
@click.option("--timeout", type=click.IntRange(1), default=None, help="Seconds before the agent is stopped")
@click.option("--retries", type=click.IntRange(0), default=None, help="Fresh-session retries after a lost worker")
@click.option("--wait/--no-wait", default=None, help="Follow the job until it ends (default: yes for --wp)")
@click.option("--inline", is_flag=True, help="Run the job in this process instead of on a worker")
@click.option("--fresh", is_flag=True, help="Start over from the current main on a new branch; the old branch "
                                            "is kept on the origin under salvage/")
@click.option("--candidates", "candidate_count", type=int, default=None,
              help="Best of N: run N candidates of the WP in parallel and keep the best (see `candidates`)")
@click.option("--agents", default=None, help="With --candidates: harnesses for the candidates, in turn "
                                             "(e.g. claude-code,codex)")
@click.option("--quorum", type=click.Choice(["first_pass", "best_of_finished", "all"]), default=None,
              help="With --candidates: when the choice is made (default best_of_finished)")
@actor_option
@json_option
def implement(feature_ref, wp_code, all_ready, harness, timeout, retries, wait, inline, fresh, candidate_count,
              agents, quorum, actor, as_json) -> None:
    """Dispatch a WP (or every ready WP) to an agent harness."""
    who = current_actor(actor)
    feature = get_feature(feature_ref)
    if all_ready == bool(wp_code):
        raise DomainError("give either --wp WPxx or --all", field="--wp", fix="e.g. --wp WP02")
    if fresh and all_ready:
        raise DomainError("--fresh starts one WP over, not every ready WP", field="--fresh",
                          fix=f"e.g. agileplus implement {feature.slug} --wp WP02 --fresh")
    if all_ready:
        jobs = start_feature(feature, harness=harness, actor=who, timeout_seconds=timeout, retries=retries)
        if as_json:
            echo_json({"feature": feature.slug, "jobs": [{"id": j.id, "wp": j.wp.code} for j in jobs]})
            return
        echo(f"Auto-dispatch on for {feature.slug}: ready WPs are queued now, and each merge queues "
                   "the WPs it unblocks.")
        for job in jobs:
            echo(f"  {job.wp.code} → {harness_title(job.harness)} (job {job.id})")
        if wait:
            _wait_feature(feature)
        else:
            echo(f"Watch it: agileplus status {feature.slug} --watch")
        return
    wp = get_wp(feature, wp_code)
    if fresh and (candidate_count is not None or agents):
        raise DomainError("--fresh starts one attempt over; candidates start from a planned WP", field="--candidates",
                          fix=f"agileplus implement {feature.slug} --wp {wp.code} --fresh, then --candidates N")
    if (candidate_count is not None or agents or quorum or candidates_config(wp)) and not fresh:
        implement_candidates(wp, count=candidate_count, agents=agents, harness=harness, quorum=quorum, actor=who,
                             timeout=timeout, retries=retries, inline=inline, wait=wait, as_json=as_json)
        return
    options = {"harness": harness, "actor": who, "timeout_seconds": timeout, "retries": retries, "send": not inline}
    if fresh:
        started = start_fresh(wp, **options)
        job = started.job
        if not as_json:
            for line in fresh_start_lines(wp.code, started.move.as_dict()):
                echo(line)
    else:
        job = services.enqueue_job(wp, **options)
    _follow_and_report(job, inline=inline, wait=wait, as_json=as_json)


def _follow_and_report(job, *, inline: bool = False, wait: bool | None = True, as_json: bool = False) -> None:
    """Follow one job (running it here with ``inline``) and print the seed's screens for its end."""
    wp, feature = job.wp, job.feature
    if as_json and not (wait or inline):
        echo_json(selectors.job_summary(job))
        return
    if not as_json:
        echo(f"Dispatching {wp.code} to {harness_title(job.harness)}...")
    if inline:
        # Here there is no other worker: an attempt handed back for retry is retried in place.
        while run_job(job.id) == JobState.QUEUED:
            pass
    if wait is None:
        wait = True
    if not as_json:
        _follow(job.id, until_running=True, quiet=True)
        job = selectors.get_job(job.id)
        if job.started_at is not None:  # the agent started (now, or already in an inline run)
            for line in selectors.dispatch_screen(job):
                echo(line)
            echo(f"Dispatching to {harness_title(job.harness)} harness...")
            echo(f"Session: {job.session_id or job.id}")
            model = selectors.job_model(job)
            if model:
                echo(f"Model: {model}")
            echo(f"Started: {job.started_at:%Y-%m-%d %H:%M:%S} UTC")
            echo("Waiting for agent to initialize...")
            if selectors.wait_agent_ready(job.id, poll=POLL):
                echo(f"Agent ready. Working on {wp.code}.")
    if wait:
        _follow(job.id, quiet=True)
    job = selectors.get_job(job.id)
    if as_json:
        echo_json(selectors.job_summary(job))
        return
    if job.state == JobState.SUCCEEDED:
        echo(f"✓ Agent completed: {_commits_text(job)}, "
             f"{counted((job.result or {}).get('files_changed', 0), 'file')} changed; {wp.code} is for_review.")
        echo(f"Next: agileplus review {feature.slug} {wp.code}")
    elif job.state in (JobState.FAILED, JobState.TIMED_OUT):
        _print_failure(job)
        raise SystemExit(1)
    elif job.state == JobState.CANCELLED:
        echo(f"Job {job.id} was cancelled.")
        raise SystemExit(1)
    else:
        echo(f"Job {job.id} is {job.state}: follow it with `agileplus logs {feature.slug} {wp.code} --follow`.")


def _commits_text(job) -> str:
    """``2 commits``: this attempt's; a resumed attempt names the earlier attempts' apart."""
    mine = job.commits.filter(attempt=job.attempt).count()
    earlier = job.commits.exclude(attempt=job.attempt).count()
    text = counted(mine, "commit") if mine or not earlier else "no new commit"
    return text + (f" (and {counted(earlier, 'commit')} from earlier attempts)" if earlier else "")


def _wait_feature(feature) -> None:
    with click.progressbar(length=feature.work_packages.count(), label="WPs done") as bar:
        done = 0
        while True:
            feature = Feature.objects.get(pk=feature.pk)
            states = list(feature.work_packages.values_list("state", flat=True))
            now_done = states.count(WPState.DONE)
            bar.update(now_done - done)
            done = now_done
            if feature.state == "shipped" or WPState.BLOCKED in states:
                break
            time.sleep(0.5)
    echo(f"{feature.slug}: {feature.state} ({done}/{len(states)} WPs done)")
    if feature.state != "shipped":
        raise SystemExit(1)


