"""Shared text renderers: the seed's status screens, audit verification, event lines.

Each takes the JSON shapes of ``agileplus.features.selectors`` / ``agileplus.audit.chain``
and returns plain lines, so the CLI, ``--watch`` and tests all render the same text.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from agileplus.cli.output import bar
from agileplus.dispatch.costs import money

TITLE_WIDTH = 28


def _started(iso: str | None) -> str:
    if not iso:
        return "-"
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%H:%M UTC")


def _tests_text(tests: dict | None, *, with_total: bool = True) -> str | None:
    if not tests or tests.get("passed") is None:
        return None
    if with_total and tests.get("total") is not None:
        return f"{tests['passed']}/{tests['total']} passing"
    return f"{tests['passed']} passing"


def _wp_label(wp: dict) -> str:
    state = wp["state"]
    job = wp.get("job") or {}
    if state == "planned":
        if wp["ready"]:
            return "ready (unblocked)" if wp.get("unblocked") else "planned (ready)"
        return "planned (blocked)"
    if state == "doing" and not _agent_running(wp):
        return "doing (no agent running)"
    if state == "doing" and wp.get("agent"):
        return f"doing ({wp['agent']})"
    if state == "blocked" and job.get("state") in ("failed", "timed_out"):
        return f"blocked ({job['state'].replace('_', ' ')})"
    return state


def _agent_running(wp: dict) -> bool:
    """A job of the WP's is queued or running (a WP a person's review sent back to doing has none)."""
    job = wp.get("job") or {}
    return bool(job) and not job.get("finished_at")


def _detail_lines(wp: dict, slug: str = "FEATURE") -> list[str]:
    """Under each WP: what it delivers (issue 15: on every WP, first, in the example's WP02 form),
    then what its state has to say."""
    state = wp["state"]
    job = wp.get("job")
    lines = [f"Deliverables: {', '.join(wp['deliverables'])}"] if wp["deliverables"] else []
    if state == "doing" and not _agent_running(wp):
        if job:
            lines.append(f"Last job: {job['id']} ({job['state'].replace('_', ' ')})")
        return [*lines, f"Next: agileplus implement {slug} --wp {wp['code']}   # dispatch an agent again"]
    if state == "done":
        if job:
            parts = [f"Commits: {job['commits']}", f"Files: {job['files_changed']}"]
            tests = _tests_text(job.get("tests"))
            if tests:
                parts.append(f"Tests: {tests}")
            lines.append(" | ".join(parts))
        when = wp.get("completed_in") or wp.get("completed_ago")  # how long it took, when the farm ran it
        if wp.get("agent") or when:
            done = f"Completed: {when}" if when else None
            lines.append(" | ".join(x for x in (f"Agent: {wp['agent']}" if wp.get("agent") else None, done) if x))
        if wp.get("review_cycles"):
            first = " (approved on first pass)" if wp["review_cycles"] == 1 and wp.get("approved_first_pass") else ""
            lines.append(f"Review cycles: {wp['review_cycles']}{first}")
    elif state == "doing" and job:
        lines += [
            f"Session: {job.get('session_id') or '-'}",
            f"Started: {_started(job.get('started_at'))}",
            f"Files changed: {job['files_changed']}",
            f"Commits: {job['commits']}",
        ]
        if job.get("current_activity"):
            lines.append(f"Current task: {job['current_activity']}")
    elif state == "for_review" and job:
        lines += [f"Commits: {job['commits']} (ahead of main)", f"Files: {job['files_changed']} changed"]
        tests = _tests_text(job.get("tests"), with_total=False)
        if tests:
            lines.append(f"Tests: {tests}")
        lines.append(f"Agent: {job['agent']} (completed)" if job.get("finished_at") else f"Agent: {job['agent']}")
    elif state in ("planned", "blocked"):
        if wp["dependencies"]:
            deps = ", ".join(d["code"] + (" (unblocked)" if d["done"] else "") for d in wp["dependencies"])
            lines.append(f"Blocked by: {deps}")
        if wp.get("estimate"):
            lines.append(f"Est. effort: {wp['estimate']}")
    return lines


def status_lines(status: dict) -> list[str]:
    """The seed's ``agileplus status 003`` screen."""
    feature = status["feature"]
    lines = [f"Feature: {feature['slug']}", f"State: {feature['state'].replace('_', ' ').title()}"]
    for wp in status["work_packages"]:
        title = wp["title"][:TITLE_WIDTH]
        lines.append(f"{wp['code']} {title:<{TITLE_WIDTH}} {bar(wp['progress'])} {_wp_label(wp)}")
        lines += [f"  {line}" for line in _detail_lines(wp, feature["slug"])]
    totals = status["totals"]
    lines.append(f"Total WP progress: {totals['done']}/{totals['total']} ({totals['percent']}%)")
    remaining = status["estimated_completion"]
    if totals["done"] < totals["total"]:
        lines.append(f"Estimated completion: {remaining['estimate'] or 'unknown (no estimates)'}")
    return lines


def overview_lines(rows: list[dict]) -> list[str]:
    """One line per feature (``agileplus status`` without a feature)."""
    if not rows:
        return ["No features yet: import one with `agileplus feature import PATH`."]
    width = max(len(r["slug"]) for r in rows)
    lines = []
    for row in rows:
        t = row["totals"]
        fraction = t["done"] / t["total"] if t["total"] else 0.0
        lines.append(
            f"{row['slug']:<{width}} {bar(fraction)} {t['done']}/{t['total']} WPs ({t['percent']}%)  {row['state']}"
        )
    return lines


def coverage_label(transition: str, *, end: bool) -> str:
    """``created->specified`` → ``created`` (start); ``WP02:for_review->done`` → ``WP02 done`` (end)."""
    wp, _, change = transition.rpartition(":") if ":" in transition else ("", "", transition)
    source, arrow, target = change.partition("->")
    state = (target if end else source) if arrow else change
    return f"{wp} {state}".strip()


def _entry_ref(entry: dict) -> str:
    """``id=4, row 112``: the position in the feature's chain (the export's ``id``) and the database
    row (``audit_auditentry.id``), which differ as soon as a second feature has entries."""
    return f"id={entry['id']}" + (f", row {entry['row_id']}" if entry.get("row_id") is not None else "")


def verification_lines(result: dict) -> list[str]:
    if result["ok"]:
        lines = [f"✓ Audit chain intact ({result['entries']} entries verified)"]
        if result["first"]:
            first, last = result["first"], result["last"]
            lines.append(
                f"Hash coverage: {coverage_label(first['transition'], end=False)} ({_entry_ref(first)}) → "
                f"{coverage_label(last['transition'], end=True)} ({_entry_ref(last)})"
            )
        return lines
    problems = result["problems"]
    lines = [f"✗ Audit chain broken: {len(problems)} problem(s) in {result['entries']} entries "
             "(id: position in this feature's chain; row: audit_auditentry.id)"]
    for p in problems:
        lines.append(f"  entry {_entry_ref(p)}: {p['kind']}: {p['detail']}")
    return lines


def event_line(event: dict) -> str:
    payload = json.dumps(event["payload"], separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return f"#{event['id']} {event['created_at']} {event['subject']} {payload}"


def fresh_start_lines(code: str, move: dict) -> list[str]:
    """Where the old work went and where the new work starts (local and remote CLI)."""
    lines = [f"Fresh start for {code}:"]
    if move["salvage_branch"]:
        lines.append(f"  Old work: {move['old_branch']} ({move['salvaged_sha'][:7]}) is kept on the origin as "
                     f"{move['salvage_branch']}")
        lines.append(f"    git fetch origin {move['salvage_branch']}   # to look at it")
    else:
        lines.append(f"  Old work: none on the origin ({move['old_branch']} was never pushed)")
    lines.append(f"  New branch: {move['branch']} from {move['main']} ({move['base'][:7]})")
    return lines


def outcomes_line(spent_on: dict) -> str:
    """``Merged WPs: 2 at $0.0120 each; wasted attempts: 3, $0.0045 (rejected 1, timed_out 2)``."""
    line = f"Merged WPs: {spent_on['merged_wps']}"
    if spent_on["merged_wps"]:
        line += f" at ${_usd(spent_on['cost_per_merged_wp_usd'])} each"
    line += f"; wasted attempts: {spent_on['wasted_attempts']}"
    if spent_on["wasted_attempts"]:
        fates = ", ".join(f"{fate} {n}" for fate, n in spent_on["wasted_by_fate"].items())
        line += f", ${_usd(spent_on['wasted_cost_usd'])} ({fates})"
    return line


def _usd(amount: str | None) -> str:
    return money(None if amount is None else Decimal(amount))
