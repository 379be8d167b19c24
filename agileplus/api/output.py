"""Response shapes: one serializer per shape, which both renders the response (``ShapeOut(obj).data``)
and is its OpenAPI schema (drf-spectacular reads it), so ``/api/schema/`` is what a client gets
(``tests/integration/api/test_api_responses_match_schema.py``: every key documented, every value of
its type). A shape the CLI's ``--json`` shares is built once by its selector (``features.selectors``,
``dispatch.selectors``, ``audit.chain``…) and rendered here; the others are read from the models.
Field order is the key order clients get. Keys are stable; new keys may be added."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers as s
from rest_framework.fields import SkipField

from agileplus.api.roles import ROLES
from agileplus.dispatch.models import JobState
from agileplus.features.lifecycles import FeatureState, WPState
from harnesses.git import redact_url


class Shape(s.Serializer):
    """A response shape. A dict a selector built is read key by key: DRF's generic lookup (made for
    objects and dotted sources) was most of the cost of rendering a feature's status
    (``bench/bench_api_render.py``). Anything else (a model instance, a dotted source, a missing
    key) takes DRF's own path, so the output is the same either way."""

    def to_representation(self, instance) -> dict:
        if type(instance) is not dict:
            return super().to_representation(instance)
        rendered = {}
        for field in self._readable_fields:
            source = field.source_attrs
            if len(source) == 1 and source[0] in instance:
                value = instance[source[0]]
            else:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
            rendered[field.field_name] = None if value is None else field.to_representation(value)
        return rendered


def enum(values, *, null: bool = False, **kwargs) -> s.Field:
    """A string from ``values``, inlined in the schema (no shared enum components to collide)."""
    schema: dict = {"type": "string", "enum": list(values) + ([None] if null else [])}
    if null:
        schema["nullable"] = True
    field_class = extend_schema_field(schema)(type("EnumField", (s.CharField,), {}))
    return field_class(allow_null=null, **kwargs)


def text(**kwargs) -> s.Field:
    return s.CharField(allow_blank=True, **kwargs)


def maybe(field_class, **kwargs) -> s.Field:
    return field_class(allow_null=True, **kwargs)


@extend_schema_field({"type": "string"})
class RedactedURLField(s.CharField):
    """A repository URL without the credentials it may carry."""

    def to_representation(self, value) -> str:
        return redact_url(value)


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class WPCodesField(s.Field):
    """Work packages, rendered as their codes."""

    def to_representation(self, value) -> list[str]:
        return [wp.code for wp in value]


# --- errors ----------------------------------------------------------------------------------
class ErrorDetailOut(Shape):
    code = s.CharField(help_text="machine-readable: invalid, not_found, illegal_transition, blocked_by_dependency, "
                                 "stale_state, permission_denied, not_authenticated, throttled, …")
    message = s.CharField()
    field = s.CharField(required=False, help_text="the request field (or path part) at fault")
    fix = s.CharField(required=False, help_text="what to do about it")
    details = s.DictField(required=False, help_text="e.g. blocked_by: [WP codes]")


class ErrorOut(Shape):
    error = ErrorDetailOut()


ERROR_TEXT = {
    400: "invalid input; `field` names it",
    401: "no or bad token",
    403: "your role may not do this",
    404: "no such feature, work package, job or endpoint",
    409: "refused: illegal transition, blocked by a dependency, stale state, or a conflict",
    429: "rate limited; see Retry-After",
}


def with_errors(ok: dict, *codes: int) -> dict:
    """``ok`` plus the error responses every endpoint can give (400, 401, 404, 429) and ``codes``."""
    out = dict(ok)
    for code in sorted({400, 401, 404, 429, *codes}):
        out[code] = OpenApiResponse(ErrorOut, description=ERROR_TEXT[code])
    return out


# --- parameters ------------------------------------------------------------------------------
SLUG = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="feature slug, number or unique slug prefix",
                        pattern=r"^[-a-zA-Z0-9_]+$")
WP = OpenApiParameter("wp", str, OpenApiParameter.PATH, description="work package code (WP02, wp2 or 2)",
                      pattern=r"^[A-Za-z0-9]{1,20}$")
JOB = OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="job id, e.g. job_4k2m9x1q0z",
                       pattern=r"^[A-Za-z0-9_.\-]{1,40}$")
REQUEST = OpenApiParameter("request_id", int, OpenApiParameter.PATH,
                           description="the id a review or a move answered with (202)")


# --- read models -----------------------------------------------------------------------------
class ProjectOut(Shape):
    name = s.CharField()
    repo_url = RedactedURLField()
    main_branch = s.CharField()


class ProjectListOut(Shape):
    results = ProjectOut(many=True)


class FeatureTotalsOut(Shape):
    done = s.IntegerField()
    total = s.IntegerField()
    doing = s.IntegerField()
    blocked = s.IntegerField()
    percent = s.IntegerField()


class FeatureHeadOut(Shape):
    id = s.IntegerField()
    slug = s.CharField()
    number = s.IntegerField()
    title = s.CharField()
    state = enum(FeatureState.ALL)
    project = s.CharField()


class FeatureRowOut(FeatureHeadOut):
    totals = FeatureTotalsOut()


class FeatureListOut(Shape):
    results = FeatureRowOut(many=True)


class TestsOut(Shape):
    passed = maybe(s.IntegerField)
    total = maybe(s.IntegerField)
    failed = maybe(s.IntegerField)


class WPJobOut(Shape):
    id = s.CharField()
    agent = s.CharField()
    harness = s.CharField()
    session_id = text()
    state = enum(JobState.ALL)
    started_at = maybe(s.DateTimeField)
    finished_at = maybe(s.DateTimeField)
    commits = s.IntegerField()
    files_changed = s.IntegerField()
    tests = TestsOut(allow_null=True)
    current_activity = text()
    completed_ago = maybe(s.CharField)


class DependencyOut(Shape):
    code = s.CharField()
    state = enum(WPState.ALL)
    done = s.BooleanField()


class WPOut(Shape):
    id = s.IntegerField()
    code = s.CharField()
    title = s.CharField()
    state = enum(WPState.ALL)
    ready = s.BooleanField(help_text="planned and every dependency done: can be dispatched now")
    blocked_by = s.ListField(child=s.CharField(), help_text="dependencies not done yet")
    dependencies = DependencyOut(many=True)
    deliverables = s.ListField(child=s.JSONField())
    estimate_days = maybe(s.FloatField)
    estimate = maybe(s.CharField)
    progress = s.FloatField()
    agent = text()
    done_at = maybe(s.DateTimeField)
    completed_ago = maybe(s.CharField)
    completed_in = maybe(s.CharField, help_text="dispatch to done, for a WP the farm ran (e.g. 45 minutes)")
    review_cycles = s.IntegerField(help_text="reviews the WP went through")
    approved_first_pass = s.BooleanField(help_text="its first review approved it")
    unblocked = s.BooleanField(help_text="a dependency the farm finished made it ready (not one imported as done)")
    job = WPJobOut(allow_null=True, help_text="the WP's latest dispatch job")


class WPPageOut(Shape):
    after = maybe(s.CharField)
    limit = s.IntegerField()
    next_after = maybe(s.CharField, help_text="pass as `after` for the next page; null on the last page")


class WPListOut(Shape):
    results = WPOut(many=True)
    next_after = maybe(s.CharField, help_text="pass as `after` for the next page; null on the last page")
    next = maybe(s.URLField)


class StatusTotalsOut(Shape):
    done = s.IntegerField()
    total = s.IntegerField()
    percent = s.IntegerField()


class CompletionOut(Shape):
    days = s.FloatField()
    estimate = maybe(s.CharField)
    critical_path = s.ListField(child=s.CharField())


class FeatureStatusOut(Shape):
    feature = FeatureHeadOut()
    work_packages = WPOut(many=True, help_text="one page (`limit`, default 200) in code order; the rest: "
                                               "`after=work_packages_page.next_after` or /wps")
    totals = StatusTotalsOut()
    estimated_completion = CompletionOut()
    work_packages_page = WPPageOut()
    cost_usd = s.CharField(help_text="decimal string: USD spent by the feature's jobs")


class AuditEntryOut(Shape):
    id = s.IntegerField(help_text="place in the feature's chain (seq)")
    feature_id = s.IntegerField()
    wp_id = maybe(s.IntegerField)
    timestamp = s.CharField()
    actor = s.CharField()
    transition = s.CharField()
    prev_hash = s.CharField()
    evidence_refs = s.ListField(child=s.JSONField())
    metadata = s.DictField()
    hash = s.CharField(help_text="SHA-256 over the RFC 8785 canonical JSON of the other fields")


class AuditPageOut(Shape):
    results = AuditEntryOut(many=True)
    next_after = maybe(s.IntegerField, help_text="pass as `after` for the next page; null on the last page")
    next = maybe(s.URLField)


class ChainPointOut(Shape):
    id = s.IntegerField()
    transition = s.CharField()


class ProblemOut(Shape):
    id = maybe(s.IntegerField)
    kind = enum(("changed", "deleted", "reordered", "broken_link"))
    detail = s.CharField()


class VerificationOut(Shape):
    feature = s.CharField()
    ok = s.BooleanField()
    entries = s.IntegerField()
    first = ChainPointOut(allow_null=True)
    last = ChainPointOut(allow_null=True)
    problems = ProblemOut(many=True)


class CostRowOut(Shape):
    # Read from a ``dispatch.costs.LedgerRow``.
    key = s.CharField()
    jobs = s.IntegerField()
    input_tokens = s.IntegerField()
    output_tokens = s.IntegerField()
    cached_input_tokens = s.IntegerField()
    cost_usd = s.CharField(allow_null=True, help_text="decimal string; null = unknown (a run's model has no price)")
    priced_cost_usd = s.CharField(help_text="decimal string: the cost of the runs that have a price")
    unpriced_runs = s.IntegerField(help_text="runs with tokens but no price for their model")


class CostListOut(Shape):
    results = CostRowOut(many=True)
    total_cost_usd = s.CharField(allow_null=True, help_text="decimal string; null = unknown")


class ReviewReportOut(Shape):
    # Read from a ``ReviewReport``.
    id = s.IntegerField()
    approved = s.BooleanField()
    actor = s.CharField()
    head_sha = text()
    checks = s.ListField(child=s.JSONField())
    text = text()
    created_at = s.DateTimeField()


class ReviewListOut(Shape):
    results = ReviewReportOut(many=True)


class MergeQueueChecksOut(Shape):
    done = s.IntegerField()
    passed = s.ListField(child=s.CharField())
    failed = s.ListField(child=s.CharField())


class MergeQueueEntryOut(Shape):
    wp = s.CharField()
    feature = s.CharField()
    title = s.CharField()
    state = s.ChoiceField(choices=["queued", "testing", "merged", "ejected", "cancelled"])
    position = s.IntegerField(allow_null=True, help_text="1 = next to be tested; null once settled")
    batch = s.CharField(allow_null=True)
    batch_wps = s.ListField(child=s.CharField(), help_text="the WPs tested together in the current candidate")
    candidate = s.CharField(allow_null=True, help_text="the commit being (or last) tested")
    head = s.CharField(allow_null=True)
    checks = MergeQueueChecksOut()
    note = s.CharField(allow_null=True)
    reason = s.CharField(allow_null=True, help_text="why the WP was ejected")
    merge_sha = s.CharField(allow_null=True, help_text="the main commit it was merged in")
    actor = s.CharField()
    enqueued_at = s.DateTimeField()
    updated_at = s.DateTimeField()


class MergeQueueOut(Shape):
    repo = s.CharField()
    project = s.CharField()
    main_branch = s.CharField()
    enabled = s.BooleanField()
    batch_max = s.IntegerField()
    bisect = s.BooleanField()
    batch_size = s.IntegerField(help_text="the adaptive size of the next batch")
    entries = MergeQueueEntryOut(many=True)
    recent = MergeQueueEntryOut(many=True)


class ReviewOut(Shape):
    # Read from a ``ReviewReport``.
    id = s.IntegerField()
    approved = s.BooleanField()
    checks = s.ListField(child=s.JSONField())
    text = s.CharField()


class ReviewRequestOut(Shape):
    """A review, or a move to done through the merge queue, run on a review worker (never in the
    web process): answered 202 at once; ``GET url`` until ``state`` is done or failed."""

    id = s.IntegerField()
    kind = enum(["review", "move"])
    feature = s.CharField()
    wp = s.CharField()
    state = enum(["queued", "running", "done", "failed"])
    actor = s.CharField()
    apply = s.BooleanField()
    worker = s.CharField(allow_null=True, help_text="the worker that ran it")
    url = s.CharField(help_text="where to watch it: GET until state is done or failed")
    report = ReviewOut(allow_null=True, help_text="review: the stored report once done")
    result = s.JSONField(allow_null=True, help_text="move: the transition once done (as the move answered before)")
    error = ErrorDetailOut(allow_null=True, help_text="failed: why")
    created_at = s.DateTimeField()
    started_at = s.DateTimeField(allow_null=True)
    finished_at = s.DateTimeField(allow_null=True)


class JobRowOut(Shape):
    # Read from a ``DispatchJob`` annotated with ``n_commits`` (``api.queries.jobs``).
    id = s.CharField()
    feature = s.CharField(source="feature.slug")
    wp = s.CharField(source="wp.code")
    harness = s.CharField()
    state = enum(JobState.ALL)
    attempt = s.IntegerField()
    worker = text()
    requested_by = s.CharField()
    queued_at = s.DateTimeField()
    commits = s.IntegerField(source="n_commits")


class JobPageOut(Shape):
    results = JobRowOut(many=True)
    next_cursor = maybe(s.CharField, help_text="pass as `cursor` for the next page; null on the last page")
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
    max_attempts = s.IntegerField()
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
    seq = s.IntegerField()
    time = s.DateTimeField(source="timestamp")
    stream = s.CharField()
    line = text()


class LogPageOut(Shape):
    results = LogLineOut(many=True)
    next_after = s.IntegerField(help_text="pass as `after` to get the lines written since")
    next = s.URLField()


class EventOut(Shape):
    id = s.IntegerField()
    msg_id = s.UUIDField()
    subject = s.CharField()
    payload = s.JSONField()
    created_at = maybe(s.DateTimeField)


class EventPageOut(Shape):
    results = EventOut(many=True)
    next_after = s.IntegerField(help_text="pass as `after` to resume after the last event seen")
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
    status = enum(("active", "idle", "available", "unavailable"))
    model = text()
    version = maybe(s.JSONField, help_text="the CLI's version, from this host or a worker")
    last_heartbeat = maybe(s.DateTimeField)
    sessions = s.IntegerField()
    workers = AgentWorkerOut(many=True)
    local = s.DictField()


class AgentListOut(Shape):
    results = AgentOut(many=True)


class WorkerOut(Shape):
    # Read from a ``Worker``.
    hostname = s.CharField()
    harnesses = s.JSONField()
    concurrency = s.IntegerField()
    active_sessions = s.IntegerField()
    last_heartbeat = maybe(s.DateTimeField)
    stopped_at = maybe(s.DateTimeField)


class WorkerListOut(Shape):
    results = WorkerOut(many=True)


# --- write results ---------------------------------------------------------------------------
class MovedOut(Shape):
    # Read from a ``features.services.TransitionResult``: the one shape of a WP's move, answered by
    # the API, MCP's ``transition``, ``move``/``wp transition --json`` and a finished review request.
    feature = s.CharField(source="feature.slug")
    wp = s.CharField(source="wp.code")
    to = enum(WPState.ALL, source="target")
    state = enum(WPState.ALL, source="target", help_text="the WP's new state")
    actor = s.CharField(source="entry.actor", help_text="the token's identity, as recorded in the audit chain")
    audit_entry = s.IntegerField(source="entry.seq", help_text="seq of the audit entry")
    merge = s.JSONField(source="entry.metadata.merge", allow_null=True)
    unblocked = WPCodesField(help_text="dependents this made ready")

    def get_fields(self):
        # "from" is a Python keyword, so it cannot be declared above; it comes after "wp".
        fields = super().get_fields()
        ordered = {"feature": fields.pop("feature"), "wp": fields.pop("wp"), "from": enum(WPState.ALL, source="source")}
        return {**ordered, **fields}


class QueuedJobOut(Shape):
    # Read from a ``DispatchJob``.
    id = s.CharField()
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
    state = enum(JobState.ALL)
    cancel_requested = s.BooleanField()


class ReportOut(Shape):
    job = s.CharField()
    added = s.IntegerField()


class TokenOut(Shape):
    username = s.CharField()
    role = enum(ROLES)
    token = s.CharField()


# Stable names for the choice sets that share a field name ("state", "to"). Served through
# SpectacularAPIView(custom_settings=...) in urls.py; belongs in SPECTACULAR_SETTINGS.
ENUM_NAME_OVERRIDES = {
    "WorkPackageStateEnum": list(WPState.ALL),
    "JobStateEnum": list(JobState.ALL),
    "FeatureStateEnum": list(FeatureState.ALL),
}
