"""Operating a farm: Prometheus metrics, webhook notifications, retention and backup.

Above the domain apps (it reads features, dispatch, review, audit and events; nothing there
imports it): ``metrics.py`` (the /metrics collector over ``selectors.py``), ``webhooks.py`` and
``notifications.py`` (endpoints, fan-out from the event outbox, signed delivery with retries),
``retention.py`` (the periodic purge), ``backup.py`` (backup and restore of the database and the
origins' notes).
"""
