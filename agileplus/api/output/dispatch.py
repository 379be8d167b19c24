"""Response shapes of jobs, their logs and costs, agents and workers, and what dispatching answers
(queued, fresh start, implement, cancel, report)."""

from __future__ import annotations

from rest_framework import serializers as s

from agileplus.api.output.base import Shape, enum, maybe, next_page, text
from agileplus.dispatch.models import JobState


class CostRowOut(Shape):
    # Read from a ``dispatch.costs.LedgerRow``.
    key = s.CharField(help_text="the group's name: an agent, a WP, a day… (the ledger's `by`)")
    jobs = s.IntegerField()
    input_tokens = s.IntegerField()
    output_tokens = s.IntegerField()
    cached_input_tokens = s.IntegerField(help_text="input tokens read from the provider's prompt cache")
    cost_usd = s.CharField(allow_null=True, help_text="decimal string; null = unknown (a run's model has no price)")
    priced_cost_usd = s.CharField(help_text="decimal string: the cost of the runs that have a price")
    unpriced_runs = s.IntegerField(help_text="runs with tokens but no price for their model")


class JobRowOut(Shape):
    # Read from a ``DispatchJob`` annotated with ``n_commits`` (``api.queries.jobs``).
    id = s.CharField(help_text="e.g. job_4k2m9x1q0z: what /api/jobs/{job_id} takes")
    feature = s.CharField(source="feature.slug")
    wp = s.CharField(source="wp.code")
    harness = s.CharField()
    state = enum(JobState.ALL)
    attempt = s.IntegerField(help_text="1 for the first run; each retry adds one")
    worker = text(help_text="the worker's hostname; empty while queued")
    requested_by = s.CharField()
    queued_at = s.DateTimeField()
    commits = s.IntegerField(source="n_commits")


class JobPageOut(Shape):
    results = JobRowOut(many=True)
    next_cursor = next_page(s.CharField, "cursor")
    next = maybe(s.URLField)


class CommitOut(Shape):
    sha = s.CharField()
    message = text()
    files = s.ListField(child=s.JSONField())


class JobOut(Shape):
    id = s.CharField()
    feature = s.CharField()
    wp = s.CharField()
    harness = s.CharField()
    state = enum(JobState.ALL)
    attempt = s.IntegerField()
    max_attempts = s.IntegerField(help_text="attempts allowed, the first included")
    worker = text()
    session_id = text()
    queued_at = s.DateTimeField()
    started_at = maybe(s.DateTimeField)
    finished_at = maybe(s.DateTimeField)
    exit_code = maybe(s.IntegerField)
    base_commit = text()
    branch = text()
    worktree = text()
    current_activity = text()
    commits = CommitOut(many=True)
    result = s.JSONField()
    usage = s.JSONField()
    error = text()
    timeout_seconds = s.IntegerField()
    prompt_sizes = s.JSONField()
    manifest_hash = maybe(s.JSONField)


class LogLineOut(Shape):
    # Read from a ``JobLogLine``.
    seq = s.IntegerField(help_text="the line's place in the job's log")
    time = s.DateTimeField(source="timestamp")
    stream = s.CharField(help_text="stdout, stderr; setup (workspace, prompt), activity (the agent's edits and "
                                   "commands, readable), tool (the same as the CLI said it), report")
    line = text(help_text="secrets redacted")


class LogPageOut(Shape):
    results = LogLineOut(many=True)
    next_after = s.IntegerField(help_text="pass as `after` to get the lines written since")
    next = s.URLField()


class AgentWorkerOut(Shape):
    hostname = s.CharField()
    sessions = s.IntegerField()
    version = maybe(s.JSONField)
    sandbox = s.CharField(help_text="how the worker isolates this agent (e.g. bubblewrap), or unknown")
    network = s.CharField(help_text="what the agent may reach (model: its model endpoint only)")
    credentials = s.DictField(help_text="names of the agent's credentials the worker has (present) and lacks "
                                        "(missing); never their values")
    alive = s.BooleanField()


class AgentOut(Shape):
    name = s.CharField()
    status = enum(("active", "idle", "available", "unavailable"),
                  help_text="active: jobs running on it; idle: a live worker serves it; available: installed "
                            "on this host only; unavailable: nowhere")
    model = text(help_text="the model configured, else the one its last finished run reported")
    version = maybe(s.JSONField, help_text="the CLI's version, from this host or a worker")
    last_heartbeat = maybe(s.DateTimeField, help_text="the latest heartbeat of a worker serving it")
    sessions = s.IntegerField(help_text="its jobs claimed or running now")
    workers = AgentWorkerOut(many=True)
    local = s.DictField(help_text="what this host found of the CLI (available, version, sandbox)")


class AgentListOut(Shape):
    results = AgentOut(many=True)


class WorkerOut(Shape):
    # Read from a ``Worker``.
    hostname = s.CharField()
    harnesses = s.JSONField(help_text="per agent CLI: available, version, sandbox, network, credentials present")
    concurrency = s.IntegerField(help_text="jobs it runs at once")
    active_sessions = s.IntegerField()
    last_heartbeat = maybe(s.DateTimeField)
    stopped_at = maybe(s.DateTimeField, help_text="set when it shut down; null while it runs")


class WorkerListOut(Shape):
    results = WorkerOut(many=True)


class QueuedJobOut(Shape):
    # Read from a ``DispatchJob``.
    id = s.CharField(help_text="follow it: GET /api/jobs/{id} and /api/jobs/{id}/log")
    wp = s.CharField(source="wp.code")
    harness = s.CharField()
    state = enum(JobState.ALL)


class FreshStartOut(Shape):
    old_branch = s.CharField(help_text="the branch the WP had")
    branch = s.CharField(help_text="its new branch, from main")
    main = s.CharField()
    base = s.CharField(help_text="main's commit the new branch starts from")
    salvage_branch = maybe(s.CharField, help_text="where the old branch is kept on the origin (null: none was pushed)")
    salvaged_sha = maybe(s.CharField)


class ImplementOut(Shape):
    feature = s.CharField()
    jobs = QueuedJobOut(many=True)
    fresh_start = FreshStartOut(required=False, help_text="with fresh: where the old work went")


class CancelOut(Shape):
    # Read from a ``DispatchJob``.
    id = s.CharField()
    state = enum(JobState.ALL, help_text="cancelled at once if it was queued; a running job's worker stops it")
    cancel_requested = s.BooleanField()


class ReportOut(Shape):
    job = s.CharField()
    added = s.IntegerField(help_text="report lines appended to the job's log")
