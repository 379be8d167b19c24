"""Calls up a layer without an import: ports the workflow plugs in at start, and doorbells that
ring a service's own task by its wire name, sent by the task itself (so eager mode runs it here)."""

import pytest
from celery import Celery
from django.utils.module_loading import import_string

from agileplus.core import doorbells
from agileplus.core.ports import Port
from agileplus.features.services import follow_ups
from agileplus.review.services import after_review
from agileplus.workflow import services as workflow


def test_a_port_called_before_it_is_plugged_names_the_app_that_plugs_it():
    port = Port("step after a review", "agileplus.workflow")
    with pytest.raises(RuntimeError, match="no step after a review: is agileplus.workflow in INSTALLED_APPS"):
        port("WP01")


def test_the_workflow_plugs_its_recorders_in_when_django_loads_the_apps():
    assert follow_ups._function is workflow.record_follow_ups
    assert after_review._function is workflow.record_after_review


@pytest.mark.parametrize("name", ["farm.run_job", "review.review_wp", "review.run_request"])
def test_each_doorbell_finds_the_task_of_its_wire_name(name):
    assert import_string(doorbells._tasks[name]).name == name


EAGER = Celery("eager", set_as_current=False)
EAGER.conf.task_always_eager = True
RAN: list[str] = []


@EAGER.task(name="test.doorbell", shared=False)  # not every Celery app's task
def doorbell(job_id: str) -> None:
    RAN.append(job_id)


def test_a_doorbell_is_sent_by_the_task_itself_so_eager_mode_runs_it_here(monkeypatch):
    monkeypatch.setitem(doorbells._tasks, "test.doorbell", f"{__name__}.doorbell")

    doorbells.ring("test.doorbell", args=["job-1"], queue="agileplus")

    assert RAN == ["job-1"]


def test_a_doorbell_of_no_installed_task_is_a_wiring_error():
    with pytest.raises(RuntimeError, match="no task 'farm.nothing' installed"):
        doorbells.ring("farm.nothing", args=[], queue="agileplus")
