"""Admin for projects, features, work packages and evidence.

States change only through the lifecycle: ``state`` is read-only here, and the
"move to …" actions call ``move_wp`` / ``transition_feature`` with actor
``human:<username>``; a refused move shows its reason and changes nothing.
Dependencies are edited through ``services.set_dependencies`` (cycle-checked).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from agileplus.audit.admin import report_verification
from agileplus.audit.chain import verify_chain
from agileplus.core.actors import parse_actor
from agileplus.core.errors import DomainError
from agileplus.features import services
from agileplus.features.import_limits import estimate_problem, list_problem
from agileplus.features.lifecycles import FeatureState, WPState
from agileplus.features.models import Dependency, Evidence, Feature, Project, WorkPackage
from agileplus.review.models import ReviewRequest
from agileplus.review.requests import move_or_queue
from harnesses.git import redact_url


def admin_actor(request) -> str:
    return str(parse_actor(f"human:{request.user.get_username()}"))


def _move_action(target: str, *, for_feature: bool):
    def action(modeladmin, request, queryset):
        moved = 0
        for obj in queryset.order_by("pk"):
            try:
                if for_feature:
                    services.transition_feature(obj, target, actor=admin_actor(request))
                elif isinstance(move_or_queue(obj, target, actor=admin_actor(request)), ReviewRequest):
                    modeladmin.message_user(request, f"{obj}: queued for a review worker (the merge queue's checks)")
                    continue
                moved += 1
            except DomainError as exc:
                modeladmin.message_user(request, f"{obj}: {exc}", level=messages.ERROR)
        if moved:
            modeladmin.message_user(request, f"moved {moved} to {target}", level=messages.SUCCESS)

    action.__name__ = f"move_to_{target}"
    action.short_description = f"Move selected to {target}"
    action.allowed_permissions = ("change",)
    return action


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "origin", "main_branch", "created_at")
    search_fields = ("name", "repo_url")

    @admin.display(description="repo url", ordering="repo_url")
    def origin(self, obj: Project) -> str:
        return redact_url(obj.repo_url)


class WorkPackageInline(admin.TabularInline):
    model = WorkPackage
    fields = ("code", "title", "state", "estimate_days", "agent")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "state", "project", "updated_at")
    list_filter = ("state", "project")
    search_fields = ("slug", "title")
    readonly_fields = ("state", "chain_status", "created_at", "updated_at")
    inlines = [WorkPackageInline]
    actions = ["verify_audit_chain"] + [_move_action(s, for_feature=True) for s in FeatureState.ALL]

    @admin.display(description="audit chain")
    def chain_status(self, obj: Feature) -> str:
        if obj.pk is None:
            return "-"
        result = verify_chain(obj)
        if result.ok:
            return format_html("✓ intact ({} entries verified)", result.count)
        return format_html("✗ broken: {}", "; ".join(str(p) for p in result.problems[:5]))

    @admin.action(description="Verify audit chain")
    def verify_audit_chain(self, request, queryset):
        report_verification(self, request, queryset.order_by("pk"))


class WorkPackageForm(forms.ModelForm):
    depends_on = forms.ModelMultipleChoiceField(
        queryset=WorkPackage.objects.none(), required=False, widget=admin.widgets.FilteredSelectMultiple("WPs", False),
        help_text="Work packages of the same feature this one waits for (cycles are refused)",
    )

    class Meta:
        model = WorkPackage
        fields = ("feature", "code", "title", "plan", "deliverables", "estimate_days", "owned_paths", "agent")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["depends_on"].queryset = WorkPackage.objects.filter(
                feature_id=self.instance.feature_id).exclude(pk=self.instance.pk)
            self.fields["depends_on"].initial = list(self.instance.dependencies.values_list("pk", flat=True))
        else:
            self.fields["depends_on"].queryset = WorkPackage.objects.all()

    # The importer's bounds (agileplus.features.importer: ImportLimits), the same definitions.
    def clean_estimate_days(self):
        days = self.cleaned_data.get("estimate_days")
        problem = estimate_problem(days) if days is not None else None
        if problem:
            raise forms.ValidationError(f"estimate_days {problem}")
        return days

    def clean_deliverables(self):
        return self._bounded("deliverables")

    def clean_owned_paths(self):
        return self._bounded("owned_paths")

    def _bounded(self, key: str):
        values = self.cleaned_data.get(key)
        if values is None:  # left empty
            return []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise forms.ValidationError(f"{key} must be a list of strings, e.g. [\"src/app.py\"]")
        problem = list_problem(key, values)
        if problem:
            raise forms.ValidationError(problem)
        return values

    def clean(self):
        data = super().clean()
        feature = data.get("feature") or getattr(self.instance, "feature", None)
        chosen = data.get("depends_on") or []
        code = services.normalize_wp_code(data.get("code") or self.instance.code or "")
        if feature is None:
            return data
        others = [w for w in chosen if w.feature_id != feature.pk]
        if others:
            self.add_error("depends_on", f"not in {feature.slug}: {', '.join(w.code for w in others)}")
            return data
        codes = set(feature.work_packages.values_list("code", flat=True)) | {code}
        edges = [(a, b) for a, b in Dependency.objects.filter(wp__feature=feature)
                 .exclude(wp__code=code).values_list("wp__code", "depends_on__code")]
        edges += [(code, w.code) for w in chosen]
        try:
            services.check_acyclic(codes, edges)
        except DomainError as exc:
            self.add_error("depends_on", str(exc))
        return data


@admin.register(WorkPackage)
class WorkPackageAdmin(admin.ModelAdmin):
    form = WorkPackageForm
    list_display = ("code", "title", "feature", "state", "estimate_days", "agent", "state_changed_at")
    list_filter = ("state", "feature__project", "feature")
    search_fields = ("code", "title", "feature__slug")
    readonly_fields = ("state", "state_changed_at", "done_at", "created_at", "updated_at")
    list_select_related = ("feature",)
    actions = [_move_action(s, for_feature=False) for s in WPState.ALL]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        codes = [w.code for w in form.cleaned_data.get("depends_on") or []]
        services.set_dependencies(form.instance, codes)


@admin.register(Evidence)
class EvidenceAdmin(admin.ModelAdmin):
    list_display = ("fr_id", "kind", "reference", "feature", "wp", "created_at")
    list_filter = ("kind", "feature")
    search_fields = ("fr_id", "reference", "summary")
