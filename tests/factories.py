"""Factories: tests build exactly the data they talk about."""

from __future__ import annotations

import factory

from agileplus.features.models import Dependency, Feature, Project, WorkPackage


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"project-{n}")
    repo_url = "/tmp/does-not-matter"


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feature

    project = factory.SubFactory(ProjectFactory)
    number = factory.Sequence(lambda n: n + 1)
    slug = factory.LazyAttribute(lambda f: f"{f.number:03d}-feature")
    title = factory.Faker("sentence", nb_words=3)
    state = "planned"


class WorkPackageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkPackage

    feature = factory.SubFactory(FeatureFactory)
    code = factory.Sequence(lambda n: f"WP{n + 1:02d}")
    title = factory.Faker("sentence", nb_words=3)


def make_feature_with_wps(n: int = 3, *, chain: bool = True, **feature_kwargs) -> tuple[Feature, list[WorkPackage]]:
    """A feature with WP01..WPn; with ``chain`` each WP depends on the one before it."""
    feature = FeatureFactory(**feature_kwargs)
    wps = [WorkPackageFactory(feature=feature, code=f"WP{i:02d}", title=f"Work package {i}") for i in range(1, n + 1)]
    if chain:
        for prev, nxt in zip(wps, wps[1:], strict=False):
            Dependency.objects.create(wp=nxt, depends_on=prev)
    return feature, wps


def make_large_feature(n: int, **feature_kwargs) -> Feature:
    """A feature of ``n`` WPs (WP01…) in one dependency chain, each owning its own folder and
    estimated at one day, written with bulk inserts (thousands of WPs in about a second)."""
    feature = FeatureFactory(**feature_kwargs)
    WorkPackage.objects.bulk_create(
        [WorkPackage(feature=feature, code=f"WP{i:02d}", title=f"Work package {i}", estimate_days=1,
                     owned_paths=[f"src/m{i}/"], deliverables=[f"src/m{i}/mod.py"]) for i in range(1, n + 1)],
        batch_size=1000)
    ids = dict(feature.work_packages.values_list("code", "pk"))
    Dependency.objects.bulk_create(
        [Dependency(wp_id=ids[f"WP{i:02d}"], depends_on_id=ids[f"WP{i - 1:02d}"]) for i in range(2, n + 1)],
        batch_size=1000)
    return feature


def make_layered_feature(n: int, *, width: int = 10, done_layers: int = 0, **feature_kwargs) -> Feature:
    """A feature of ``n`` WPs in layers of ``width``: each WP after the first layer depends on two of
    the layer before (its column and the next), one day each; the first ``done_layers`` layers done,
    the next one's first WP doing, the rest planned (bulk inserts: a 200-WP DAG for pages and benches)."""
    feature = FeatureFactory(**feature_kwargs)

    def state(i: int) -> str:
        layer = i // width
        return "done" if layer < done_layers else ("doing" if i == done_layers * width else "planned")

    WorkPackage.objects.bulk_create(
        [WorkPackage(feature=feature, code=f"WP{i + 1:03d}", title=f"Work package {i + 1}", estimate_days=1,
                     state=state(i), agent="codex" if state(i) != "planned" else "") for i in range(n)],
        batch_size=1000)
    ids = dict(feature.work_packages.values_list("code", "pk"))
    links = {(i, (i // width - 1) * width + (i + k) % width) for i in range(width, n) for k in (0, 1)}
    Dependency.objects.bulk_create(
        [Dependency(wp_id=ids[f"WP{a + 1:03d}"], depends_on_id=ids[f"WP{b + 1:03d}"]) for a, b in sorted(links)],
        batch_size=1000)
    return feature


class DispatchJobFactory(factory.django.DjangoModelFactory):
    """A job of a WP (running, on its first attempt, unless told)."""

    class Meta:
        model = "dispatch.DispatchJob"

    id = factory.Sequence(lambda n: f"job-{n:06d}")
    wp = factory.SubFactory(WorkPackageFactory)
    feature = factory.SelfAttribute("wp.feature")
    harness = "command"
    requested_by = "test"
    state = "running"
    attempt = 1
    worker = "worker-a"
