"""Response shapes of projects, features and work packages: lists, a feature's status, a WP's move."""

from __future__ import annotations

from rest_framework import serializers as s

from agileplus.api.output.base import RedactedURLField, Shape, enum, maybe, next_page, text
from agileplus.dispatch.models import JobState
from agileplus.features.lifecycles import FeatureState, WPState


class ProjectOut(Shape):
    name = s.CharField()
    repo_url = RedactedURLField()
    main_branch = s.CharField()


class ProjectListOut(Shape):
    results = ProjectOut(many=True)


class StatusTotalsOut(Shape):
    done = s.IntegerField(help_text="WPs done")
    total = s.IntegerField(help_text="WPs in the feature")
    percent = s.IntegerField(help_text="done of total, 0 to 100")


class FeatureTotalsOut(StatusTotalsOut):
    doing = s.IntegerField()
    blocked = s.IntegerField()


class FeatureHeadOut(Shape):
    id = s.IntegerField()
    slug = s.CharField(help_text="e.g. 003-user-auth: what the URLs take (or the number, or a unique prefix)")
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
    code = s.CharField(help_text="e.g. WP02, unique in its feature")
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
    next_after = next_page(s.CharField)


class WPListOut(Shape):
    results = WPOut(many=True)
    next_after = next_page(s.CharField)
    next = maybe(s.URLField)


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


class MovedOut(Shape):
    # ``features.services.TransitionResult.as_dict()``, the one shape of a WP's move, answered by the
    # API, MCP's ``transition``, ``move``/``wp transition --json`` and a finished review request
    # (which stores the dict); a TransitionResult is turned into it first.
    feature = s.CharField()
    wp = s.CharField()
    to = enum(WPState.ALL)
    state = enum(WPState.ALL, help_text="the WP's new state")
    actor = s.CharField(help_text="the token's identity, as recorded in the audit chain")
    audit_entry = s.IntegerField(help_text="seq of the audit entry")
    merge = s.JSONField(allow_null=True)
    unblocked = s.ListField(child=s.CharField(), help_text="dependents this made ready")

    def get_fields(self):
        # "from" is a Python keyword, so it cannot be declared above; it comes after "wp".
        fields = super().get_fields()
        ordered = {"feature": fields.pop("feature"), "wp": fields.pop("wp"), "from": enum(WPState.ALL)}
        return {**ordered, **fields}

    def to_representation(self, instance) -> dict:
        return super().to_representation(instance if type(instance) is dict else instance.as_dict())
