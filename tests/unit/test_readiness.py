"""The one readiness rule (features.dag.is_ready) and the graph functions built on it."""

from agileplus.features import dag

EDGES = [("WP03", "WP01"), ("WP03", "WP02"), ("WP04", "WP03")]  # (a, b): a depends on b


def test_a_planned_wp_with_every_dependency_done_is_ready():
    assert dag.is_ready("planned", ["done", "done"])


def test_a_planned_wp_without_dependencies_is_ready():
    assert dag.is_ready("planned", [])


def test_one_dependency_not_done_keeps_a_wp_from_being_ready():
    assert not dag.is_ready("planned", ["done", "for_review"])


def test_a_wp_that_is_not_planned_is_not_ready():
    assert not dag.is_ready("blocked", ["done"])


def test_ready_nodes_are_the_planned_wps_whose_dependencies_are_done():
    states = {"WP01": "done", "WP02": "planned", "WP03": "planned", "WP04": "planned"}
    assert dag.ready_nodes(states, EDGES) == {"WP02"}


def test_finishing_the_last_dependency_unblocks_its_dependent_only():
    states = {"WP01": "done", "WP02": "for_review", "WP03": "planned", "WP04": "planned"}
    assert dag.unblocked_by("WP02", states, EDGES) == ["WP03"]


def test_finishing_one_of_two_dependencies_unblocks_nothing():
    states = {"WP01": "doing", "WP02": "for_review", "WP03": "planned", "WP04": "planned"}
    assert dag.unblocked_by("WP02", states, EDGES) == []
