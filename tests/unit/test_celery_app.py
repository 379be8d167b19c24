"""The Celery app finds every task in the apps' tasks.py under the names messages, beat and
docker/ use, and takes its configuration from Django settings."""

from django.conf import settings

from workers.celery import app

WIRE_NAMES = {
    "farm.run_job", "farm.reap", "farm.worker_heartbeat", "review.review_wp", "review.run_request",
    "review.process_merge_queues", "review.release_silent_requests", "workflow.retry_follow_ups",
    "operations.purge",
    "workflow.score_candidate", "workflow.decide_candidates",
}


def registered() -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith("celery.")}


def test_every_task_is_autodiscovered_under_its_wire_name():
    assert registered() == WIRE_NAMES


def test_every_scheduled_task_exists():
    assert {entry["task"] for entry in app.conf.beat_schedule.values()} <= registered()


def test_the_configuration_is_read_from_django_settings():
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
