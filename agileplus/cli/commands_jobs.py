"""`agileplus jobs` (list, show, session, replay, cancel) and `agileplus logs`: a job's record and its log,
read through the dispatch selectors; thin: parse, call, render."""

from __future__ import annotations

import time

import click

from agileplus.cli.commands_dispatch import POLL, _follow_and_report
from agileplus.cli.context import actor_option, current_actor, feature_and_wp, json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json
from agileplus.core.errors import DomainError
from agileplus.dispatch import selectors, services, sessions
from agileplus.dispatch.models import ACTIVITY_STREAM, SETUP_STREAM, TOOL_STREAM, JobState
from agileplus.features.services import find_wp, get_feature, get_wp


@cli.group()
def jobs() -> None:
    """Dispatch jobs."""


@jobs.command("list")
@click.option("--feature", "feature_ref", default=None)
@click.option("--state", type=click.Choice(JobState.ALL), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50)
@json_option
def jobs_list(feature_ref, state, limit, as_json) -> None:
    feature = get_feature(feature_ref) if feature_ref else None
    rows = selectors.list_jobs(feature=feature, state=state, limit=limit)
    if as_json:
        echo_json([{"id": j.id, "feature": j.feature.slug, "wp": j.wp.code, "harness": j.harness,
                    "state": j.state, "attempt": j.attempt, "worker": j.worker, "commits": j.n_commits,
                    "queued_at": j.queued_at} for j in rows])
        return
    if not rows:
        echo("No jobs.")
    for j in rows:
        echo(f"{j.id}  {j.feature.slug} {j.wp.code}  {j.harness:<12} {j.state:<10} attempt {j.attempt}"
                   f"/{j.max_attempts}  commits {j.n_commits}  {j.worker or '-'}")


def _print_log(job, *, tail: int | None = None, without: tuple[str, ...] = ()) -> int:
    """The job's log as `[10:15:33] …` lines; returns the last line's seq."""
    last = 0
    for line in selectors.log_lines(job, tail=tail, without=without):
        echo(f"[{line.timestamp:%H:%M:%S}] {line.line}")
        last = line.seq
    return last


@jobs.command("show")
@click.argument("job_id")
@click.option("--log", "with_log", is_flag=True, help="Also print the job's whole log (the raw agent stream)")
@json_option
def jobs_show(job_id, with_log, as_json) -> None:
    job = selectors.get_job(job_id)
    data = selectors.job_summary(job)
    if as_json:
        if with_log:
            data["log"] = [{"seq": ln.seq, "timestamp": ln.timestamp, "stream": ln.stream, "line": ln.line}
                           for ln in selectors.log_lines(job)]
        echo_json(data)
        return
    for key in ("id", "feature", "wp", "harness", "state", "attempt", "worker", "session_id", "branch",
                "worktree", "base_commit", "started_at", "finished_at", "exit_code", "current_activity",
                "manifest_hash", "error"):
        if data.get(key) not in (None, ""):
            echo(f"{key.replace('_', ' ').capitalize()}: {data[key]}")
    usage = data.get("usage") or {}
    if usage.get("input_tokens") or usage.get("output_tokens"):
        echo(f"Tokens: {usage.get('input_tokens') or 0:,} in / {usage.get('output_tokens') or 0:,} out")
    if usage.get("cost_usd") not in (None, ""):
        echo(f"Cost: ${usage['cost_usd']}" + (" (metered by the model gateway)"
                                              if usage.get("source") == "gateway" else ""))
    elif usage.get("input_tokens") or usage.get("output_tokens"):
        echo(f"Cost: unknown (no price for model {usage.get('model') or 'unnamed'})")
    if data["commits"]:
        echo("Commits:")
        for c in data["commits"]:
            earlier = f" (attempt {c['attempt']})" if c.get("attempt") not in (None, job.attempt) else ""
            echo(f"  {c['sha'][:7]} {c['message'].splitlines()[0] if c['message'] else ''}{earlier}")
    salvage = (data.get("result") or {}).get("salvage_ref")
    if salvage:
        echo(f"Salvaged work: {salvage}")
    if with_log:
        echo("Log:")
        _print_log(job, without=(ACTIVITY_STREAM,))


@jobs.command("session")
@click.argument("job_id")
@click.option("--tail", "tail_lines", default=5, show_default=True, help="Last lines of each transcript file")
@json_option
def jobs_session(job_id, tail_lines, as_json) -> None:
    """The agent session stored for the job's WP (what its next run resumes), secrets redacted."""
    data = sessions.session_summary(sessions.job_session(job_id), tail_lines=tail_lines)
    if as_json:
        echo_json(data)
        return
    echo(f"Session: {data['session_id']} ({data['harness']}, {data['wp']})")
    echo(f"Stored by: {data['job_id']} attempt {data['attempt']} on {data['worker'] or '-'} "
               f"at {data['updated_at']}")
    echo(f"Files: {data['files']} ({data['raw_bytes']:,} bytes, {data['stored_bytes']:,} stored)"
               + (f"; {data['note']}" if data["note"] else ""))
    for name, lines in data["tails"].items():
        echo(f"{name}:")
        for line in lines:
            echo(f"  {line}")


@jobs.command("replay")
@click.argument("job_id")
@click.option("--agent", "harness", default=None, help="Replay on another harness (default: the original's)")
@click.option("--wait/--no-wait", default=True, help="Follow the job until it ends")
@click.option("--inline", is_flag=True, help="Run the job in this process instead of on a worker")
@actor_option
@json_option
def jobs_replay(job_id, harness, wait, inline, actor, as_json) -> None:
    """Dispatch a job's manifest again: same prompt, same base commit."""
    job = services.replay_job(job_id, actor=current_actor(actor), harness=harness, send=not inline)
    if not wait and not inline:
        if as_json:
            echo_json(selectors.job_summary(job))
        else:
            echo(f"Replaying {job_id} as {job.id} on {job.harness}")
        return
    _follow_and_report(job, inline=inline, as_json=as_json)


@jobs.command("cancel")
@click.argument("job_id")
@actor_option
def jobs_cancel(job_id, actor) -> None:
    job = services.cancel_job(job_id, actor=current_actor(actor))
    echo(f"{job.id}: {'cancelled' if job.state == JobState.CANCELLED else 'cancel requested'}")


@cli.command()
@click.argument("refs", nargs=-1, metavar="[FEATURE] WP")
@click.option("--feature", "feature_ref", default=None, help="Feature (optional when the WP code is unique)")
@click.option("--tail", type=click.IntRange(1), default=None, help="Only the last N lines")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends")
@click.option("--job", "job_id", default=None, help="A job id instead of the WP's latest job")
@click.option("--raw", is_flag=True, help="The agent's tool lines as its CLI reported them, instead of the "
                                           "readable activity")
def logs(refs, feature_ref, tail, follow, job_id, raw) -> None:
    """The agent session's log for a WP, as `[10:15:33] …` lines: what the agent did, in words
    (`Created src/login.rs (245 lines)`); `--raw` shows its tool lines and their output as the CLI
    said them (the workspace and prompt preamble `implement` printed is in `jobs show JOB --log`)."""
    if job_id:
        job = selectors.get_job(job_id)
    else:
        feature_ref, wp_code = feature_and_wp(refs, feature_ref)
        wp = get_wp(get_feature(feature_ref), wp_code) if feature_ref else find_wp(wp_code)
        job = selectors.latest_job(wp)
        if job is None:
            raise DomainError(f"{wp.code} has no jobs yet", field="WP",
                              fix=f"agileplus implement {wp.feature.slug} --wp {wp.code}")
    without = (SETUP_STREAM, ACTIVITY_STREAM if raw else TOOL_STREAM)
    last = _print_log(job, tail=tail, without=without)
    while follow:
        job = selectors.get_job(job.id)
        for line in selectors.log_lines(job, after_seq=last, without=without):
            echo(f"[{line.timestamp:%H:%M:%S}] {line.line}")
            last = line.seq
        if job.state in JobState.FINAL:
            break
        time.sleep(POLL)
