"""`review` and `move`: thin commands over agileplus.review."""

from __future__ import annotations

import click

from agileplus.cli.commands_candidates import card_lines
from agileplus.cli.context import actor_option, current_actor, json_option
from agileplus.cli.main import cli
from agileplus.cli.output import echo, echo_json, echo_moved
from agileplus.core.text import counted
from agileplus.features.services import get_feature, get_wp
from agileplus.review import moves, requests, services
from agileplus.review.conflicts import policy, predicted_conflicts
from agileplus.review.selectors import merge_queues
from agileplus.workflow.selectors import latest_round, round_summary


@cli.command()
@click.argument("feature_ref", metavar="FEATURE")
@click.argument("wp_code", metavar="WP")
@click.option("--apply", is_flag=True, help="Approved: move to done (merge). Rejected: back to doing.")
@click.option("--inline", is_flag=True, help="Run the checks in this process instead of on a review worker")
@actor_option
@json_option
def review(feature_ref, wp_code, apply, inline, actor, as_json) -> None:
    """Run the automated review of a WP on main merged with its branch (on a review worker)."""
    wp = get_wp(get_feature(feature_ref), wp_code)
    if not as_json:
        echo(f"Reviewing {wp.code}: {wp.title}...", err=True)
    request = requests.queue_review(wp, actor=current_actor(actor) if actor else services.CI_AUTOMATION,
                                    apply=apply, send=not inline)
    if inline:
        requests.run_request(request.pk)
    report = requests.wait_for_request(request.pk, on_change=None if as_json else _review_progress).report
    rnd = latest_round(wp)  # best of N: the report says which candidate this is and why it was chosen
    chosen = round_summary(rnd) if rnd and rnd.state == rnd.CHOSEN else None
    if as_json:
        echo_json({"report_id": report.pk, "approved": report.approved, "checks": report.checks,
                   **({"candidates": chosen} if chosen else {})})
    else:
        echo(report.text)
        for line in card_lines(chosen) if chosen else []:
            echo(line)
    if not report.approved:
        raise SystemExit(1)


def _review_progress(request) -> None:
    if request.state == request.QUEUED:
        echo(f"Review request {request.pk} queued: waiting for a review worker "
                   "(`agileplus worker` runs one)...", err=True)
    elif request.state == request.RUNNING:
        echo(f"Running the checks on worker {request.worker}...", err=True)


@cli.command()
@click.argument("feature_ref", metavar="FEATURE")
@click.argument("wp_code", metavar="WP")
@click.option("--to", "target", required=True, help="Target state (done merges the branch)")
@actor_option
@json_option
def move(feature_ref, wp_code, target, actor, as_json) -> None:
    """Move a WP; to done merges feat/<feature>-<WP> into main and unblocks dependents."""
    wp = get_wp(get_feature(feature_ref), wp_code)
    result = moves.move_wp(wp, target, actor=current_actor(actor))
    merge = (result.entry.metadata or {}).get("merge")
    if as_json:
        echo_moved(result)
        return
    echo(f"{wp.code} moved to {result.target}")
    if merge:
        echo(f"Merging branch {merge['branch']} → {wp.feature.project.main_branch}")
        echo(f"✓ Merged ({counted(merge['commits'], 'commit')}, {counted(merge['files'], 'file')})"
                   if not merge.get("already_merged") else "✓ Already merged")
    if result.target == "done":
        echo("Dependency resolution:")
        if result.unblocked:
            for u in result.unblocked:
                echo(f"  {u.code} ({u.title}) is now unblocked")
        else:
            echo("  no work package became ready")


@cli.command()
@click.argument("feature_ref", metavar="FEATURE")
@json_option
def conflicts(feature_ref: str, as_json: bool) -> None:
    """Predicted merge conflicts between open WPs: declared owned paths and pushed branches."""

    feature = get_feature(feature_ref)
    found = predicted_conflicts(feature)
    if as_json:
        echo_json({"feature": feature.slug, "policy": policy(feature), "conflicts": [c.as_dict() for c in found]})
        return
    if not found:
        echo(f"No predicted conflicts in {feature.slug}.")
        return
    verb = "run one after the other" if policy(feature) == "serialize" else "are only flagged (conflict_policy: warn)"
    echo(f"Predicted conflicts in {feature.slug} (such WPs {verb}):")
    for c in found:
        echo(f"  {c.describe()}")


@cli.command()
@click.argument("feature_ref", metavar="[FEATURE]", required=False)
@json_option
def queue(feature_ref: str | None, as_json: bool) -> None:
    """The merge queue: position, batch and check progress of each approved WP, and why the
    latest ones were merged or ejected."""
    feature = get_feature(feature_ref) if feature_ref else None
    queues = merge_queues(feature)
    if as_json:
        echo_json({"feature": feature.slug if feature else None, "queues": queues})
        return
    if not queues:
        echo("The merge queue is empty.")
    for q in queues:
        mode = (f"batch size {q['batch_size']} (max {q['batch_max']}), bisect {'on' if q['bisect'] else 'off'}"
                if q["enabled"] else "OFF: branches merge without re-running the checks (unsafe)")
        echo(f"Merge queue of {q['project']} → {q['main_branch']}: {mode}")
        if not q["entries"]:
            echo("  (nothing queued)")
        for e in q["entries"]:
            checks = " ".join([f"✓ {n}" for n in e["checks"]["passed"]] + [f"✗ {n}" for n in e["checks"]["failed"]])
            batch = f" batch {e['batch']} ({', '.join(e['batch_wps'])})" if e["batch"] and e["batch_wps"] else ""
            echo(f"  {e['position']:>2}. {e['feature']} {e['wp']} {e['state']}{batch}"
                       + (f"  {checks}" if checks else "") + (f"  ({e['note']})" if e["note"] else ""))
        for e in q["recent"]:
            if e["state"] == "merged":
                echo(f"  ✓ {e['feature']} {e['wp']} merged: main → {e['merge_sha'][:7]}"
                           + (f" (batch {', '.join(e['batch_wps'])})" if e["batch_wps"] else ""))
            else:
                echo(f"  ✗ {e['feature']} {e['wp']} {e['state']}: {e['reason']}")
