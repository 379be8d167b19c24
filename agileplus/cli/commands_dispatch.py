"""`implement`, `jobs`, `logs`, `agents`: thin commands over agileplus.dispatch."""

from __future__ import annotations

import time

import click
from django.utils import timezone

from agileplus.cli.accounts_screen import echo_accounts
from agileplus.cli.context import actor_option, current_actor, feature_and_wp, json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json, mark_json
from agileplus.cli.render import fresh_start_lines
from agileplus.core.errors import DomainError
from agileplus.core.text import counted
from agileplus.dispatch import selectors, services, sessions
from agileplus.dispatch.fresh import start_fresh
from agileplus.dispatch.models import ACTIVITY_STREAM, SETUP_STREAM, TOOL_STREAM, JobState
from agileplus.dispatch.runner import run_job
from agileplus.dispatch.sandboxing import local_harnesses
from agileplus.features.lifecycles import WPState
from agileplus.features.models import Feature
from agileplus.features.services import find_wp, get_feature, get_wp
from agileplus.workflow.services import start_feature
from harnesses.base import HarnessError
from harnesses.check import as_json as results_json
from harnesses.check import check_harnesses, render

HARNESS_TITLES = {"claude-code": "Claude Code", "codex": "Codex", "gemini": "Gemini CLI", "aider": "Aider",
                  "opencode": "opencode", "command": "command"}
POLL = 0.2
AGENT_SCREEN = {"active": ("active", "connected"), "idle": ("available", "connected"),
                "available": ("available", "idle"), "unavailable": ("unavailable", "unavailable")}


def harness_title(name: str) -> str:
    return HARNESS_TITLES.get(name, name)


def _ago(moment) -> str:
    if not moment:
        return "never"
    seconds = int((timezone.now() - moment).total_seconds())
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''} ago"
    if seconds < 3600:
        return f"{seconds // 60} minute{'s' if seconds // 60 != 1 else ''} ago"
    return f"{seconds // 3600} hour{'s' if seconds // 3600 != 1 else ''} ago"


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
@actor_option
@json_option
def implement(feature_ref, wp_code, all_ready, harness, timeout, retries, wait, inline, fresh, actor, as_json) -> None:
    """Dispatch a WP (or every ready WP) to an agent harness."""
    if as_json:
        mark_json()
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
    if as_json:
        mark_json()
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


def _sandbox_line(info: dict) -> str:
    """Sandbox mode, network policy and credential names (present / missing) of a harness on a worker."""
    creds = info.get("credentials") or {}
    present = ", ".join(creds.get("present") or []) or "none"
    missing = ", ".join(creds.get("missing") or [])
    return (f"Sandbox: {info.get('sandbox', 'unknown')}, network {info.get('network', 'model')}"
            f"{_agent_identity(info)}; credentials: {present}" + (f" (missing: {missing})" if missing else ""))


def _agent_identity(info: dict) -> str:
    """The agent's capabilities and uid, and what bounds its memory (the job, or each process and why)."""
    if "capabilities" not in info:  # announced by a worker of an earlier version
        return ""
    memory = info.get("memory") or {}
    bound = (f"memory per job (cgroup {memory.get('cgroup')})" if memory.get("scope") == "job"
             else f"memory per process only ({memory.get('why', 'no memory cgroup')})")
    return f", capabilities {info['capabilities']}, uid {info.get('uid')}, {bound}"


@cli.group()
def agents() -> None:
    """Agent harnesses."""


@agents.command("list")
@json_option
def agents_list(as_json) -> None:
    rows = selectors.agents_overview(local_harnesses())
    if as_json:
        echo_json(rows)
        return
    echo("Available Agent Harnesses:")
    for row in rows:
        # The example's words: (active) with sessions, (available) otherwise; "connected" while a
        # live worker serves it, "idle" when only installed or its workers went quiet.
        header, state = AGENT_SCREEN.get(row["status"], (row["status"], row["status"]))
        echo(f"{row['name']} ({header})")
        echo(f"  Status: {state}")
        if row["model"]:
            echo(f"  Model: {row['model']}")
        if row.get("version"):
            echo(f"  Version: {row['version']}")
        echo(f"  Last heartbeat: {_ago(row['last_heartbeat'])}")
        echo(f"  Sessions: {row['sessions']} active")
        for w in row["workers"]:
            echo(f"    worker {w['hostname']}: {w['sessions']} active"
                       f"{'' if w['alive'] else ' (no heartbeat)'}")
            echo(f"      {_sandbox_line(w)}")
        if row["local"].get("sandbox"):
            echo(f"  This machine: {_sandbox_line(row['local'])}")
        if row["status"] == "unavailable" and row["local"].get("reason"):
            echo(f"  Why: {row['local']['reason']}")
    echo_accounts()
    echo("Select harness with --agent flag or set default in config.")


@agents.command("check")
@click.argument("harnesses", nargs=-1)
@click.option("--pinned", is_flag=True, help="Check the CLIs pinned in tools/agent-clis instead of those on PATH.")
@json_option
def agents_check(harnesses, pinned, as_json) -> None:
    """Run each installed agent CLI against a built-in scripted model endpoint (no tokens spent)
    in a scratch repository; exit 1 if any drifted from what its adapter expects."""
    try:
        results = check_harnesses(list(harnesses) or None, use_pinned=pinned)
    except HarnessError as exc:
        raise DomainError(str(exc), field="harnesses", fix="name harnesses from `agileplus agents list`") from None
    echo(results_json(results) if as_json else "\n".join(render(results)))
    drifted = [r for r in results if r.problems]
    if drifted:
        raise SystemExit(1)
