"""Agent harnesses, workers, and dispatch jobs (the database is the record of truth;
the broker only carries a job id as a doorbell)."""

from __future__ import annotations

from django.db import models


class JobState:
    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    ACTIVE = (QUEUED, CLAIMED, RUNNING)
    HELD = (CLAIMED, RUNNING)
    FINAL = (SUCCEEDED, FAILED, TIMED_OUT, CANCELLED)
    ALL = ACTIVE + FINAL
    CHOICES = [(s, s) for s in ALL]


class AgentHarness(models.Model):
    """A configured agent backend (claude-code, codex, command, …)."""

    name = models.SlugField(max_length=100, unique=True)
    adapter = models.CharField(max_length=100, help_text="Adapter name in the harness registry")
    model = models.CharField(max_length=200, blank=True)
    cli_version = models.CharField(max_length=100, blank=True, help_text="Pinned CLI version")
    enabled = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Worker(models.Model):
    """A worker process, as it last announced itself by heartbeat."""

    hostname = models.CharField(max_length=255, unique=True)
    harnesses = models.JSONField(default=dict, blank=True, help_text="adapter name -> {version, model, available}")
    concurrency = models.PositiveIntegerField(default=1)
    active_sessions = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname


class DispatchJob(models.Model):
    """One attempt series of one agent on one WP.

    ``attempt`` is the fencing token: every write from a worker names the attempt
    it holds, and is refused once the job was re-queued to a newer attempt.
    """

    id = models.CharField(primary_key=True, max_length=40)
    feature = models.ForeignKey("features.Feature", on_delete=models.CASCADE, related_name="jobs")
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="jobs")
    harness = models.CharField(max_length=100)
    state = models.CharField(max_length=20, choices=JobState.CHOICES, default=JobState.QUEUED, db_index=True)
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    timeout_seconds = models.PositiveIntegerField(default=3600)
    requested_by = models.CharField(max_length=120)
    worker = models.CharField(max_length=255, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    # A queued job is not claimed before this time: parked until a rate limit's reset.
    not_before = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    base_commit = models.CharField(max_length=64, blank=True)
    branch = models.CharField(max_length=300, blank=True)
    worktree = models.CharField(max_length=1000, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    prompt = models.TextField(blank=True)
    prompt_sizes = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    current_activity = models.CharField(max_length=300, blank=True)
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        ordering = ["-queued_at"]
        indexes = [models.Index(fields=["state", "lease_expires_at"], name="job_lease_idx")]

    def __str__(self) -> str:
        return self.id


# The log's stream of the `implement` screen's preamble (workspace, prompt sizes): `agileplus
# logs` leaves it out and starts at the agent session, as the example's log does.
SETUP_STREAM = "setup"
# An agent's tool use as the CLI's stream said it (`Write: /…/file`, a command's output): `logs
# --raw` only. Its readable line (`Created src/login.rs (245 lines)`, harnesses/activity.py) is on
# ACTIVITY_STREAM, which `logs` shows and `--raw` leaves out.
TOOL_STREAM = "tool"
ACTIVITY_STREAM = "activity"


class JobLogLine(models.Model):
    job = models.ForeignKey(DispatchJob, on_delete=models.CASCADE, related_name="log_lines")
    attempt = models.PositiveIntegerField(default=1)
    seq = models.PositiveIntegerField()
    timestamp = models.DateTimeField()
    stream = models.CharField(max_length=10, default="stdout")
    line = models.TextField()

    class Meta:
        ordering = ["job", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="unique_log_seq")]


class JobCommit(models.Model):
    job = models.ForeignKey(DispatchJob, on_delete=models.CASCADE, related_name="commits")
    attempt = models.PositiveIntegerField(default=1)
    sha = models.CharField(max_length=64)
    message = models.TextField()
    files = models.JSONField(default=list)
    committed_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["reported_at", "id"]
        constraints = [models.UniqueConstraint(fields=["job", "sha"], name="unique_job_commit")]


class AgentSession(models.Model):
    """The agent CLI's own session for one WP and harness: its id and its transcript files (the
    CLI's session folder as a gzip'd tar, kept intact: the CLI reads it back on resume). Written
    at each heartbeat of the job that runs it; read by the next attempt on any worker. Shown only
    redacted (``dispatch/sessions.py: session_summary``)."""

    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="agent_sessions")
    harness = models.CharField(max_length=100)
    session_id = models.CharField(max_length=200)
    job = models.ForeignKey(DispatchJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    attempt = models.PositiveIntegerField(default=1)
    worker = models.CharField(max_length=255, blank=True)
    files = models.BinaryField(null=True, blank=True)  # None: too large to keep (over AGENT_SESSION_MAX_BYTES)
    files_sha256 = models.CharField(max_length=64, blank=True)
    files_count = models.PositiveIntegerField(default=0)
    raw_bytes = models.PositiveBigIntegerField(default=0)
    note = models.CharField(max_length=300, blank=True)  # why no files are kept, when none are
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["wp", "harness"], name="unique_agent_session")]

    def __str__(self) -> str:
        return f"{self.harness}:{self.session_id}"


class ModelCall(models.Model):
    """One model call an agent made through the worker's gateway, as the provider billed it: the
    ledger's row. Written once, as the call ends (``dispatch/gateway.py``); never changed.
    ``cost_usd`` is None when the model has no price ("unknown", never $0)."""

    job = models.ForeignKey(DispatchJob, on_delete=models.CASCADE, related_name="model_calls")
    attempt = models.PositiveIntegerField(default=1)
    feature = models.ForeignKey("features.Feature", on_delete=models.CASCADE, related_name="+")
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="+")
    harness = models.CharField(max_length=100)
    worker = models.CharField(max_length=255, blank=True)
    provider = models.CharField(max_length=40)
    account = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=20)  # ok | truncated | refused | upstream_error
    detail = models.CharField(max_length=300, blank=True)
    input_tokens = models.PositiveBigIntegerField(default=0)
    cached_input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    client_gone = models.BooleanField(default=False)
    first_byte_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(default=0)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["ended_at", "id"]
        indexes = [models.Index(fields=["job", "attempt"], name="model_call_job_idx")]

    def __str__(self) -> str:
        return f"{self.job_id} {self.provider} {self.model}"


class SpendReservation(models.Model):
    """What a job holds against its budgets while it runs (``dispatch/reservations.py``): taken
    when its gateway starts, grown as its calls use it up, gone when the job ends. A budget's
    other jobs count ``max(amount_usd, what the ledger already billed the job)``, so jobs started
    together cannot all be admitted at $0 and overrun a budget together."""

    job = models.OneToOneField(DispatchJob, on_delete=models.CASCADE, primary_key=True, related_name="reservation")
    feature = models.ForeignKey("features.Feature", on_delete=models.CASCADE, related_name="+")
    wp = models.ForeignKey("features.WorkPackage", on_delete=models.CASCADE, related_name="+")
    amount_usd = models.DecimalField(max_digits=14, decimal_places=8)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.job_id} ${self.amount_usd}"


class ProviderAccount(models.Model):
    """A provider account the workers' keys belong to (``gateway.account_of``) and, when a provider
    answered 429 with a reset, until when it is parked for every worker (``dispatch/accounts.py``)."""

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=40)
    parked_until = models.DateTimeField(null=True, blank=True)
    parked_reason = models.CharField(max_length=300, blank=True)
    parked_by = models.CharField(max_length=255, blank=True)  # the worker whose call got the 429
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
