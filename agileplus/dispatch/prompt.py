"""Packaging the prompt an agent receives: the seed's sections, built from the feature,
the WP, its dependencies and the governance constraints. Environment variable NAMES
appear; values never do (secrets stay out of prompts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agileplus.features.lifecycles import WPState
from agileplus.features.models import Feature, WorkPackage

DEFAULT_CONVENTION = "feat({wp}): <description>"


@dataclass
class PackagedPrompt:
    text: str
    sections: dict[str, int] = field(default_factory=dict)  # name -> bytes
    deliverables: int = 0

    def summary_lines(self, feature_slug: str, wp_code: str) -> list[str]:
        kb = lambda n: f"{n / 1024:.1f} KB"  # noqa: E731
        return [
            f"Feature spec: {feature_slug} ({kb(self.sections.get('SPECIFICATION', 0))})",
            f"Work package plan: {wp_code} ({kb(self.sections.get('WORK PACKAGE PLAN', 0))})",
            f"Deliverables list: {self.deliverables} file{'s' if self.deliverables != 1 else ''}",
            f"Governance constraints: {kb(self.sections.get('GOVERNANCE CONSTRAINTS', 0))}",
            f"Total prompt: {kb(len(self.text.encode()))}",
        ]


def commit_convention(feature: Feature) -> str:
    constraints = feature.constraints or {}
    return constraints.get("commit_convention") or DEFAULT_CONVENTION


def _dep_line(dep: WorkPackage) -> str:
    mark = "✓ DONE" if dep.state == WPState.DONE else f"({dep.state})"
    return f"{dep.code} ({dep.title}) {mark}"


def governance_lines(feature: Feature, wp: WorkPackage) -> list[str]:
    c = feature.constraints or {}
    lines = []
    for path in c.get("allowed_paths") or []:
        lines.append(f"✓ Can create/modify: {path}")
    for path in wp.owned_paths or []:
        lines.append(f"✓ Owns: {path}")
    for path in c.get("forbidden_paths") or []:
        lines.append(f"✗ Cannot modify: {path}")
    others = WorkPackage.objects.filter(feature=feature).exclude(pk=wp.pk).exclude(owned_paths=[])
    for other in others:
        for path in other.owned_paths or []:
            if path not in (wp.owned_paths or []):
                lines.append(f"✗ Cannot modify: {path} ({other.code}'s domain)")
    if c.get("max_file_size"):
        lines.append(f"✗ No file larger than {int(c['max_file_size']):,} bytes")
    lines.append("✗ Cannot change git history (no rebase of existing commits, no force push)")
    return lines


def review_check_lines(project_config: dict) -> list[str]:
    """The review's configured checks, as the example's GOVERNANCE CONSTRAINTS words them."""
    lines = []
    for check in ((project_config or {}).get("review") or {}).get("checks") or []:
        if not isinstance(check, dict):
            continue
        name = str(check.get("name", ""))
        if name in ("governance", "commit_convention", "deliverables"):
            continue  # the path rules and the convention are spelled out below
        if name == "function_length":
            lines.append(f"✓ Function length: < {int(check.get('max_lines', 50))} lines preferred")
        elif check.get("command"):
            label = "All tests must pass" if name.startswith("test") or check.get("parser") else "All code must pass"
            lines.append(f"✓ {label}: {check['command']}")
        if check.get("coverage_threshold") is not None:
            lines.append(f"✓ Test coverage: >= {float(check['coverage_threshold']):g}%")
    return lines


def time_budget(seconds: int) -> str:
    """``You have 1 hour. Let's go!`` (the example's words), ``You have 1 hour 30 minutes. …``."""
    minutes = max(1, seconds // 60)
    hours, rest = divmod(minutes, 60)
    parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
    if rest or not hours:
        parts.append(f"{rest} minute{'s' if rest != 1 else ''}")
    return f"You have {' '.join(parts)}. Let's go!"


def build_prompt(feature: Feature, wp: WorkPackage, *, config: dict | None = None,
                 environment_names: list[str] | None = None, base_commit: str | None = None,
                 notes: list[str] | None = None, timeout_seconds: int | None = None,
                 branch: str | None = None) -> PackagedPrompt:
    """The agent's prompt; ``branch``: the one it works on when not the WP's own (a candidate's)."""
    config = config or {}
    deps = list(wp.dependencies.all().order_by("code"))
    dependents = list(wp.dependents.all().order_by("code"))
    convention = commit_convention(feature)
    example = convention.replace("{wp}", wp.code)
    sections: list[tuple[str, str]] = []
    sections.append(("MISSION", f"# MISSION\nImplement {wp.code}: {wp.title} for feature {feature.slug}\n"))
    done = [d.code for d in feature.work_packages.filter(state=WPState.DONE).order_by("code")]
    sections.append(("CONTEXT", "\n".join([
        "## CONTEXT",
        f"Feature: {feature.title}",
        f"Status: {feature.state}" + (f" ({', '.join(done)} complete)" if done else ""),
        *(f"Note: {n}" for n in (notes or [])),
    ]) + "\n"))
    sections.append(("SPECIFICATION", f"## SPECIFICATION\n{feature.spec.strip() or '(no spec.md)'}\n"))
    plan = ["## WORK PACKAGE PLAN", f"{wp.code}: {wp.title}"]
    if deps:
        plan.append("Depends on: " + ", ".join(_dep_line(d) for d in deps))
    if dependents:
        plan.append("Blocks: " + ", ".join(f"{d.code} ({d.title})" for d in dependents))
    if wp.plan.strip():
        plan.append(wp.plan.strip())
    sections.append(("WORK PACKAGE PLAN", "\n".join(plan) + "\n"))
    deliverables = list(wp.deliverables or [])
    sections.append(("DELIVERABLES", "### Deliverables\n" + "\n".join(
        f"{i}. {d}" for i, d in enumerate(deliverables, 1)) + "\n"))
    gov = ["## GOVERNANCE CONSTRAINTS", *review_check_lines(feature.project.config or {}),
           *governance_lines(feature, wp), "Commit Convention",
           f"Format: {example}", "Examples:", f"- {example.replace('<description>', 'implement the main change')}",
           f"- {example.replace('<description>', 'add tests')}"]
    sections.append(("GOVERNANCE CONSTRAINTS", "\n".join(gov) + "\n"))
    env_lines = ["## ENVIRONMENT", f"Project: {feature.project.name}"]
    if base_commit:
        env_lines.append(f"Base commit: {base_commit[:7]} (main)")
    if environment_names:
        env_lines.append("Environment variables available: " + ", ".join(sorted(environment_names)))
    sections.append(("ENVIRONMENT", "\n".join(env_lines) + "\n"))
    allowed = ", ".join((feature.constraints or {}).get("allowed_paths") or wp.owned_paths or []) or "the WP's files"
    sections.append(("YOUR TASK", "\n".join([
        "## YOUR TASK",
        f"Implement {wp.code} according to spec, plan, and acceptance criteria.",
        "When done:",
        "1. Create commits with the convention above",
        f"2. Leave the worktree on branch {branch or wp.branch_name}",
        "3. All tests must pass locally",
        f"4. No modifications outside {allowed}",
        time_budget(timeout_seconds or int(config.get("timeout_seconds") or 3600)),
    ]) + "\n"))
    text = "\n".join(body for _, body in sections)
    return PackagedPrompt(text, {name: len(body.encode()) for name, body in sections}, len(deliverables))
