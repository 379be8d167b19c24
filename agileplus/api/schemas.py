"""Response shapes, for the OpenAPI schema only: the views render the same dicts the CLI prints
with ``--json`` (``features.selectors``, ``dispatch.selectors``, ``audit.chain``…), and these
serializers describe them, so ``/api/schema/`` says what a client really gets (checked by the
schemathesis test: every response conforms). Keys are stable; new keys may be added."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers as s

from agileplus.api.roles import ROLES
from agileplus.dispatch.models import JobState
from agileplus.features.lifecycles import FeatureState, WPState


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


# --- errors ----------------------------------------------------------------------------------
class ErrorDetailOut(s.Serializer):
    code = s.CharField(help_text="machine-readable: invalid, not_found, illegal_transition, blocked_by_dependency, "
                                 "stale_state, permission_denied, not_authenticated, throttled, …")
    message = s.CharField()
    field = s.CharField(required=False, help_text="the request field (or path part) at fault")
    fix = s.CharField(required=False, help_text="what to do about it")
    details = s.DictField(required=False, help_text="e.g. blocked_by: [WP codes]")


class ErrorOut(s.Serializer):
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
class ProjectOut(s.Serializer):
    name = s.CharField()
    repo_url = s.CharField()
    main_branch = s.CharField()


class ProjectListOut(s.Serializer):
    results = ProjectOut(many=True)


class FeatureTotalsOut(s.Serializer):
    done = s.IntegerField()
    total = s.IntegerField()
    doing = s.IntegerField()
    blocked = s.IntegerField()
    percent = s.IntegerField()


class FeatureRowOut(s.Serializer):
    id = s.IntegerField()
    slug = s.CharField()
    number = s.IntegerField()
    title = s.CharField()
    state = enum(FeatureState.ALL)
    project = s.CharField()
    totals = FeatureTotalsOut()


class FeatureListOut(s.Serializer):
    results = FeatureRowOut(many=True)


class TestsOut(s.Serializer):
    passed = maybe(s.IntegerField)
    total = maybe(s.IntegerField)
    failed = maybe(s.IntegerField)


class WPJobOut(s.Serializer):
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


class DependencyOut(s.Serializer):
    code = s.CharField()
    state = enum(WPState.ALL)
    done = s.BooleanField()


class WPOut(s.Serializer):
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
    job = WPJobOut(allow_null=True, help_text="the WP's latest dispatch job")


class WPPageOut(s.Serializer):
    after = maybe(s.CharField)
    limit = s.IntegerField()
    next_after = maybe(s.CharField, help_text="pass as `after` for the next page; null on the last page")


class WPListOut(s.Serializer):
    results = WPOut(many=True)
    next_after = maybe(s.CharField, help_text="pass as `after` for the next page; null on the last page")
    next = maybe(s.URLField)


class FeatureHeadOut(s.Serializer):
    id = s.IntegerField()
    slug = s.CharField()
    number = s.IntegerField()
    title = s.CharField()
    state = enum(FeatureState.ALL)
    project = s.CharField()


class StatusTotalsOut(s.Serializer):
    done = s.IntegerField()
    total = s.IntegerField()
    percent = s.IntegerField()


class CompletionOut(s.Serializer):
    days = s.FloatField()
    estimate = maybe(s.CharField)
    critical_path = s.ListField(child=s.CharField())


class FeatureStatusOut(s.Serializer):
    feature = FeatureHeadOut()
    work_packages = WPOut(many=True, help_text="one page (`limit`, default 200) in code order; the rest: "
                                               "`after=work_packages_page.next_after` or /wps")
    work_packages_page = WPPageOut()
    totals = StatusTotalsOut()
    estimated_completion = CompletionOut()
    cost_usd = s.CharField(help_text="decimal string: USD spent by the feature's jobs")


class AuditEntryOut(s.Serializer):
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


class AuditPageOut(s.Serializer):
    results = AuditEntryOut(many=True)
    next_after = maybe(s.IntegerField, help_text="pass as `after` for the next page; null on the last page")
    next = maybe(s.URLField)


class ChainPointOut(s.Serializer):
    id = s.IntegerField()
    transition = s.CharField()


class ProblemOut(s.Serializer):
    id = maybe(s.IntegerField)
    kind = enum(("changed", "deleted", "reordered", "broken_link"))
    detail = s.CharField()


class VerificationOut(s.Serializer):
    feature = s.CharField()
    ok = s.BooleanField()
    entries = s.IntegerField()
    first = ChainPointOut(allow_null=True)
    last = ChainPointOut(allow_null=True)
    problems = ProblemOut(many=True)


class CostRowOut(s.Serializer):
    key = s.CharField()
    jobs = s.IntegerField()
    input_tokens = s.IntegerField()
    output_tokens = s.IntegerField()
    cached_input_tokens = s.IntegerField()
    cost_usd = s.CharField(help_text="decimal string")


class CostListOut(s.Serializer):
    results = CostRowOut(many=True)
    total_cost_usd = s.CharField(help_text="decimal string")


class ReviewReportOut(s.Serializer):
    id = s.IntegerField()
    approved = s.BooleanField()
    actor = s.CharField()
    head_sha = text()
    checks = s.ListField(child=s.JSONField())
    text = text()
    created_at = s.DateTimeField()


class ReviewListOut(s.Serializer):
    results = ReviewReportOut(many=True)


class MergeQueueChecksOut(s.Serializer):
    done = s.IntegerField()
    passed = s.ListField(child=s.CharField())
    failed = s.ListField(child=s.CharField())


class MergeQueueEntryOut(s.Serializer):
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


class MergeQueueOut(s.Serializer):
    repo = s.CharField()
    project = s.CharField()
    main_branch = s.CharField()
    enabled = s.BooleanField()
    batch_max = s.IntegerField()
    bisect = s.BooleanField()
    batch_size = s.IntegerField(help_text="the adaptive size of the next batch")
    entries = MergeQueueEntryOut(many=True)
    recent = MergeQueueEntryOut(many=True)


class ReviewOut(s.Serializer):
    id = s.IntegerField()
    approved = s.BooleanField()
    checks = s.ListField(child=s.JSONField())
    text = s.CharField()


class ReviewRequestOut(s.Serializer):
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


class JobRowOut(s.Serializer):
    id = s.CharField()
    feature = s.CharField()
    wp = s.CharField()
    harness = s.CharField()
    state = enum(JobState.ALL)
    attempt = s.IntegerField()
    worker = text()
    requested_by = s.CharField()
    queued_at = s.DateTimeField()
    commits = s.IntegerField()


class JobPageOut(s.Serializer):
    results = JobRowOut(many=True)
    next_cursor = maybe(s.CharField, help_text="pass as `cursor` for the next page; null on the last page")
    next = maybe(s.URLField)


class CommitOut(s.Serializer):
    sha = s.CharField()
    message = text()
    files = s.ListField(child=s.JSONField())


class JobOut(s.Serializer):
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


class LogLineOut(s.Serializer):
    seq = s.IntegerField()
    time = s.DateTimeField()
    stream = s.CharField()
    line = text()


class LogPageOut(s.Serializer):
    results = LogLineOut(many=True)
    next_after = s.IntegerField(help_text="pass as `after` to get the lines written since")
    next = s.URLField()


class EventOut(s.Serializer):
    id = s.IntegerField()
    msg_id = s.UUIDField()
    subject = s.CharField()
    payload = s.JSONField()
    created_at = maybe(s.DateTimeField)


class EventPageOut(s.Serializer):
    results = EventOut(many=True)
    next_after = s.IntegerField(help_text="pass as `after` to resume after the last event seen")
    next = s.URLField()


class AgentWorkerOut(s.Serializer):
    hostname = s.CharField()
    sessions = s.IntegerField()
    version = maybe(s.JSONField)
    alive = s.BooleanField()


class AgentOut(s.Serializer):
    name = s.CharField()
    status = enum(("active", "idle", "available", "unavailable"))
    model = text()
    last_heartbeat = maybe(s.DateTimeField)
    sessions = s.IntegerField()
    workers = AgentWorkerOut(many=True)
    local = s.DictField()


class AgentListOut(s.Serializer):
    results = AgentOut(many=True)


class WorkerOut(s.Serializer):
    hostname = s.CharField()
    harnesses = s.JSONField()
    concurrency = s.IntegerField()
    active_sessions = s.IntegerField()
    last_heartbeat = maybe(s.DateTimeField)
    stopped_at = maybe(s.DateTimeField)


class WorkerListOut(s.Serializer):
    results = WorkerOut(many=True)


# --- write results ---------------------------------------------------------------------------
class MovedOut(s.Serializer):
    wp = s.CharField()
    state = enum(WPState.ALL, help_text="the WP's new state")
    to = enum(WPState.ALL)
    actor = s.CharField(help_text="the token's identity, as recorded in the audit chain")
    audit_entry = s.IntegerField(help_text="seq of the audit entry")
    merge = s.JSONField(allow_null=True)
    unblocked = s.ListField(child=s.CharField(), help_text="dependents this made ready")

    def get_fields(self):  # "from" is a keyword
        fields = super().get_fields()
        fields["from"] = enum(WPState.ALL)
        return fields


class QueuedJobOut(s.Serializer):
    id = s.CharField()
    wp = s.CharField()
    harness = s.CharField()
    state = enum(JobState.ALL)


class ImplementOut(s.Serializer):
    feature = s.CharField()
    jobs = QueuedJobOut(many=True)


class CancelOut(s.Serializer):
    id = s.CharField()
    state = enum(JobState.ALL)
    cancel_requested = s.BooleanField()


class ReportOut(s.Serializer):
    job = s.CharField()
    added = s.IntegerField()


class TokenOut(s.Serializer):
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
