"""Projects, features, work packages, their dependency DAG, and evidence."""

from __future__ import annotations

from django.db import models

from agileplus.features.lifecycles import FeatureState, WPState
from harnesses.git import branch_name as default_branch_name


class Project(models.Model):
    """A target repository the farm works on."""

    name = models.SlugField(max_length=100, unique=True)
    repo_url = models.CharField(max_length=1000, help_text="Path or URL of the origin repository")
    main_branch = models.CharField(max_length=200, default="main")
    config = models.JSONField(default=dict, blank=True, help_text="Parsed .kittify/config.yaml")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Feature(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="features")
    slug = models.SlugField(max_length=150, unique=True, help_text="e.g. 003-auth-system")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=300)
    spec = models.TextField(blank=True)
    plan = models.TextField(blank=True)
    constraints = models.JSONField(default=dict, blank=True)
    agent_config = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=FeatureState.CHOICES, default=FeatureState.CREATED)
    source_path = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["number", "slug"]

    def __str__(self) -> str:
        return self.slug


class WorkPackage(models.Model):
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="work_packages")
    code = models.CharField(max_length=20, help_text="WP01, WP02, …")
    title = models.CharField(max_length=300)
    plan = models.TextField(blank=True)
    deliverables = models.JSONField(default=list, blank=True)
    estimate_days = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    owned_paths = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=20, choices=WPState.CHOICES, default=WPState.PLANNED)
    dependencies = models.ManyToManyField(
        "self", through="Dependency", symmetrical=False, related_name="dependents", blank=True
    )
    agent = models.CharField(max_length=100, blank=True, help_text="Harness that last worked on it")
    candidates = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Best of N for this WP (its task file's `candidates:`); 1: one attempt")
    fresh_branch = models.CharField(
        max_length=250, blank=True,
        help_text="The branch a fresh start (`implement --fresh`) gave it; blank: feat/<feature>-<WP>")
    source_path = models.CharField(max_length=1000, blank=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["feature", "code"]
        constraints = [models.UniqueConstraint(fields=["feature", "code"], name="unique_wp_code_per_feature")]

    def __str__(self) -> str:
        return f"{self.feature.slug}/{self.code}"

    @property
    def branch_name(self) -> str:
        """The branch its agents work on, review reads and the merge takes, on the origin."""
        return wp_branch_name(self.feature.slug, self.code, self.fresh_branch)


def wp_branch_name(feature_slug: str, code: str, fresh_branch: str = "") -> str:
    """``WorkPackage.branch_name`` from plain values (for code reading rows, not model instances)."""
    return fresh_branch or default_branch_name(feature_slug, code)


class Dependency(models.Model):
    """``wp`` depends on ``depends_on``: an AND-dependency inside one feature."""

    wp = models.ForeignKey(WorkPackage, on_delete=models.CASCADE, related_name="dependency_links")
    depends_on = models.ForeignKey(WorkPackage, on_delete=models.CASCADE, related_name="dependent_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["wp", "depends_on"], name="unique_dependency"),
            models.CheckConstraint(condition=~models.Q(wp=models.F("depends_on")), name="no_self_dependency"),
        ]

    def __str__(self) -> str:
        return f"{self.wp.code} -> {self.depends_on.code}"


class Evidence(models.Model):
    """Links a functional requirement (``FR-001``) to proof: a test run, a commit, a review report."""

    KINDS = [("test_run", "test run"), ("commit", "commit"), ("review", "review report"), ("other", "other")]
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="evidence")
    wp = models.ForeignKey(WorkPackage, on_delete=models.CASCADE, null=True, blank=True, related_name="evidence")
    fr_id = models.CharField(max_length=50)
    kind = models.CharField(max_length=20, choices=KINDS)
    reference = models.CharField(max_length=500, help_text="Commit sha, report id, URL…")
    summary = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["feature", "fr_id", "id"]

    def __str__(self) -> str:
        return f"{self.fr_id}: {self.kind} {self.reference}"
