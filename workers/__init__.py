"""Celery workers: the app, queues, routing, and thin tasks that call domain services."""
