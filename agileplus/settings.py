"""Settings, driven by environment variables with safe embedded defaults.

With no environment set, AgilePlus runs on SQLite and kombu's filesystem broker,
keeping all state in one data folder (``AGILEPLUS_DATA_DIR``).
``DATABASE_URL``, ``CELERY_BROKER_URL`` and ``NATS_URL`` switch to PostgreSQL,
Redis and NATS.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("AGILEPLUS_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    """A per-data-folder secret key, generated once, so no key ships in the code."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _env_bool("DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")
                 if h.strip()]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "agileplus.core",
    "agileplus.features",
    "agileplus.audit",
    "agileplus.events",
    "agileplus.dispatch",
    "agileplus.review",
    "agileplus.api",
    "agileplus.dashboard",
    "agileplus.workflow",
    "agileplus.provenance",
    "agileplus.operations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "agileplus.api.middleware.RequestLimitsMiddleware",  # body size, JSON depth: before reading or auth
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "agileplus.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "agileplus.wsgi.application"
ASGI_APPLICATION = "agileplus.asgi.application"

# --- Database -------------------------------------------------------------
SQLITE_PATH = DATA_DIR / "agileplus.sqlite3"
# IMMEDIATE: a writer takes the write lock at BEGIN, so two writers queue on the busy
# timeout instead of one failing a lock upgrade mid-transaction ("database is locked").
SQLITE_OPTIONS = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
}
# Unset = the embedded SQLite file in the data folder (one machine; the CLI creates it on first use).
DATABASE_URL = os.environ.get("DATABASE_URL", "")


def _postgres_dead_peer_options(dead_peer_seconds: int, idle_in_transaction_seconds: int) -> dict:
    """Connection options that end a session whose other end is gone. A host cut off from the
    network mid-transaction (between a SELECT … FOR UPDATE and its COMMIT) otherwise keeps its row
    locks for the kernel's two hours of TCP silence, and every reaper and claim waiting on them
    stalls with it. Keepalives on both ends and a user timeout on unacknowledged data close such a
    connection in ``dead_peer_seconds``; a client alive but stuck inside a transaction loses it
    after ``idle_in_transaction_seconds`` (longer than any transaction of ours stays idle). 0 turns
    either off."""
    options: dict = {}
    server: list[str] = []
    if dead_peer_seconds > 0:
        idle, interval, count = max(1, dead_peer_seconds // 2), max(1, dead_peer_seconds // 6), 3
        options.update(keepalives=1, keepalives_idle=idle, keepalives_interval=interval, keepalives_count=count,
                       tcp_user_timeout=dead_peer_seconds * 1000)
        server += [f"tcp_keepalives_idle={idle}", f"tcp_keepalives_interval={interval}",
                   f"tcp_keepalives_count={count}", f"tcp_user_timeout={dead_peer_seconds * 1000}"]
    if idle_in_transaction_seconds > 0:
        server.append(f"idle_in_transaction_session_timeout={idle_in_transaction_seconds * 1000}")
    if server:
        options["options"] = " ".join(f"-c {setting}" for setting in server)
    return options


if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(
        DATABASE_URL,
        # Persistent connections pay off under a threaded WSGI server (gunicorn); keep 0 under ASGI.
        conn_max_age=int(os.environ.get("AGILEPLUS_DB_CONN_MAX_AGE", "0")),
        conn_health_checks=True,
    )}
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # A database host that stops answering fails a connection attempt in seconds, not in the
        # kernel's two minutes of SYN retries: the API answers 503, a heartbeat retries next beat.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
            "connect_timeout", int(os.environ.get("AGILEPLUS_DB_CONNECT_TIMEOUT", "5")))
        _given = DATABASES["default"]["OPTIONS"].get("options", "")  # e.g. ?options=-c search_path=… in the URL
        DATABASES["default"]["OPTIONS"].update(_postgres_dead_peer_options(
            int(os.environ.get("AGILEPLUS_DB_DEAD_PEER_SECONDS", "15")),
            int(os.environ.get("AGILEPLUS_DB_IDLE_IN_TRANSACTION_SECONDS", "600"))))
        if _given:  # the URL's own server settings are kept, after ours: they win where both set one
            DATABASES["default"]["OPTIONS"]["options"] = " ".join(
                filter(None, [DATABASES["default"]["OPTIONS"].get("options", ""), _given]))
        DATABASES["default"]["TEST"] = {"NAME": os.environ.get("AGILEPLUS_TEST_DB_NAME", "test_agileplus")}
    elif DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            "OPTIONS": dict(SQLITE_OPTIONS),
            "TEST": {"NAME": str(DATA_DIR / "test_agileplus.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery ------------------------------------------------------------------
BROKER_DIR = Path(os.environ.get("AGILEPLUS_BROKER_DIR", DATA_DIR / "broker")).resolve()
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost//")
CELERY_EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("filesystem://")
CELERY_TASK_ALWAYS_EAGER = _env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Longest agent run we allow (a WP timeout is enforced by the runner itself).
CELERY_TASK_TIME_LIMIT = int(os.environ.get("AGILEPLUS_TASK_HARD_LIMIT", 6 * 3600))
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
if CELERY_EMBEDDED_BROKER:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),  # remote control (Flower, inspect) works here too
        "quarantine_folder": str(BROKER_DIR / "quarantine"),  # files no reader could use (workers/broker.py)
        "store_processed": False,
        "polling_interval": 0.05,
    }
else:
    # Redis re-delivers an unacked task after visibility_timeout: keep it above the hard limit.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 3600, "polling_interval": 0.1}
    # Two farms (or test processes) on one Redis database: each prefixes every key and channel it uses.
    if os.environ.get("AGILEPLUS_REDIS_KEY_PREFIX"):
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = os.environ["AGILEPLUS_REDIS_KEY_PREFIX"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # the attempt cap lives in the database (max_attempts)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_DEFAULT_QUEUE = "agileplus"
CELERY_TASK_ROUTES = {"review.*": {"queue": "agileplus"}, "farm.*": {"queue": "agileplus"},
                      "workflow.*": {"queue": "agileplus"}, "operations.*": {"queue": "agileplus"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker channel error restarts the worker's consumer (with a pause) instead of ending the worker.
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# How often beat runs the reaper (expired leases, stale queued jobs) and retries workflow follow-ups.
REAP_EVERY_SECONDS = float(os.environ.get("AGILEPLUS_REAP_EVERY", "10"))
# How often beat runs the merge queues nobody is running (their holder died, or every approver
# returned while another held the lock).
MERGE_QUEUE_EVERY_SECONDS = float(os.environ.get("AGILEPLUS_MERGE_QUEUE_EVERY", "30"))
CELERY_BEAT_SCHEDULE = {
    "reap-expired-leases": {"task": "farm.reap", "schedule": REAP_EVERY_SECONDS},
    "retry-follow-ups": {"task": "workflow.retry_follow_ups", "schedule": REAP_EVERY_SECONDS},
    "merge-queues": {"task": "review.process_merge_queues", "schedule": MERGE_QUEUE_EVERY_SECONDS},
    "review-requests-of-silent-workers": {"task": "review.release_silent_requests", "schedule": REAP_EVERY_SECONDS},
}
# Operations (agileplus/operations): beat's process sends the due webhooks every WEBHOOK_POLL_SECONDS
# (a thread of its own), and its schedule runs the retention purge.
WEBHOOK_POLL_SECONDS = float(os.environ.get("AGILEPLUS_WEBHOOK_POLL_SECONDS", "1"))
RETENTION_EVERY_SECONDS = float(os.environ.get("AGILEPLUS_RETENTION_EVERY", "3600"))
CELERY_BEAT_SCHEDULE["retention-purge"] = {"task": "operations.purge", "schedule": RETENTION_EVERY_SECONDS}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# --- Events ---------------------------------------------------------------------
NATS_URL = os.environ.get("NATS_URL", "")
NATS_STREAM = os.environ.get("AGILEPLUS_NATS_STREAM", "AGILEPLUS")
# The first subject token on NATS: two farms sharing one NATS need a stream and a prefix each.
NATS_SUBJECT_PREFIX = os.environ.get("AGILEPLUS_NATS_SUBJECT_PREFIX", "agileplus")
SSE_MAX_CLIENTS = int(os.environ.get("AGILEPLUS_SSE_MAX_CLIENTS", "100"))
API_MAX_BODY_BYTES = int(os.environ.get("AGILEPLUS_API_MAX_BODY_BYTES", "1000000"))
API_MAX_JSON_DEPTH = int(os.environ.get("AGILEPLUS_API_MAX_JSON_DEPTH", "64"))

# --- Farm -------------------------------------------------------------------------
WORKER_DATA_DIR = Path(os.environ.get("AGILEPLUS_WORKER_DIR", DATA_DIR / "worker")).resolve()
JOB_LEASE_SECONDS = int(os.environ.get("AGILEPLUS_JOB_LEASE_SECONDS", "60"))
JOB_LOG_MAX_LINES = int(os.environ.get("AGILEPLUS_JOB_LOG_MAX_LINES", "20000"))
AGENT_KILL_GRACE_SECONDS = float(os.environ.get("AGILEPLUS_KILL_GRACE_SECONDS", "30"))
# Jobs running at once across the farm under auto-dispatch (each feature also has agent.max_parallel).
MAX_PARALLEL_JOBS = int(os.environ.get("AGILEPLUS_MAX_PARALLEL_JOBS", "16"))
# How often a worker writes its presence row (harnesses, active sessions) for `agents list`.
WORKER_HEARTBEAT_SECONDS = float(os.environ.get("AGILEPLUS_WORKER_HEARTBEAT", "5"))
# A worker not heard from for this long is gone: the review requests it was running are queued again.
WORKER_SILENT_SECONDS = float(os.environ.get("AGILEPLUS_WORKER_SILENT_SECONDS",
                                             str(max(30.0, 6 * WORKER_HEARTBEAT_SECONDS))))
# A workflow follow-up (review, redispatch, queue ready WPs) not done this long after its last
# attempt is tried again by the reaper, up to FOLLOW_UP_MAX_ATTEMPTS times.
FOLLOW_UP_RETRY_SECONDS = float(os.environ.get("AGILEPLUS_FOLLOW_UP_RETRY_SECONDS", "120"))
FOLLOW_UP_MAX_ATTEMPTS = int(os.environ.get("AGILEPLUS_FOLLOW_UP_MAX_ATTEMPTS", "10"))
# Best of N: the most candidates one WP may run at once (`implement --candidates N`).
MAX_CANDIDATES = int(os.environ.get("AGILEPLUS_MAX_CANDIDATES", "5"))
# A warning (log line + `timeout_warning` event) this long before an agent's timeout; 0 = none.
AGENT_TIMEOUT_WARNING_SECONDS = float(os.environ.get("AGILEPLUS_TIMEOUT_WARNING_SECONDS", "30"))
# An agent CLI's session (id + its transcript files, gzip'd) is stored in the database at each
# heartbeat so a next attempt on any worker resumes it: files over this size are not stored
# (the next attempt then starts a fresh session); sessions are deleted when their WP is done or
# this many days after their last write.
AGENT_SESSION_MAX_BYTES = int(os.environ.get("AGILEPLUS_AGENT_SESSION_MAX_BYTES", str(20 << 20)))
AGENT_SESSION_RETENTION_DAYS = float(os.environ.get("AGILEPLUS_AGENT_SESSION_RETENTION_DAYS", "14"))
# A rate-limited run (no fallback harness configured) waits until the reset time the CLI gave,
# else a backoff from RATE_LIMIT_BACKOFF_SECONDS doubling per wait, capped at RATE_LIMIT_MAX_WAIT_SECONDS;
# after RATE_LIMIT_MAX_WAITS waits of one job it fails (rate_limited) and the WP is blocked.
RATE_LIMIT_BACKOFF_SECONDS = float(os.environ.get("AGILEPLUS_RATE_LIMIT_BACKOFF_SECONDS", "30"))
RATE_LIMIT_MAX_WAIT_SECONDS = float(os.environ.get("AGILEPLUS_RATE_LIMIT_MAX_WAIT_SECONDS", "3600"))
RATE_LIMIT_MAX_WAITS = int(os.environ.get("AGILEPLUS_RATE_LIMIT_MAX_WAITS", "10"))
# The model gateway (harnesses/gateway.py): an agent's model calls go through its worker, which
# holds the key and meters every call. "off" hands the harness's key to the agent as before.
MODEL_GATEWAY = os.environ.get("AGILEPLUS_MODEL_GATEWAY", "on").strip().lower() != "off"
# More certificate authorities (a PEM file) the gateway trusts for providers, besides the system's.
MODEL_GATEWAY_CA_FILE = os.environ.get("AGILEPLUS_MODEL_GATEWAY_CA_FILE", "")
# After its agent ends, how long a job waits for its calls still in flight to end and be billed.
MODEL_GATEWAY_DRAIN_SECONDS = float(os.environ.get("AGILEPLUS_MODEL_GATEWAY_DRAIN_SECONDS", "60"))
# What a job reserves against its budgets when it starts and neither agent.budget.reserve_usd nor its
# WP's history says (dispatch/reservations.py).
MODEL_GATEWAY_RESERVE_USD = os.environ.get("AGILEPLUS_MODEL_GATEWAY_RESERVE_USD", "0.50")

# --- Operations: metrics, webhooks, retention (agileplus/operations, docs/operations.md) -------
# Addresses (CIDRs, comma-separated) whose scrapes of /metrics need no token; others send an API token.
# /metrics serves figures read from the database at most this many seconds ago (a thread of the web
# process reads them while scrapes come); 0 reads them at each scrape.
METRICS_REFRESH_SECONDS = float(os.environ.get("AGILEPLUS_METRICS_REFRESH_SECONDS", "10"))
METRICS_ALLOW_FROM = [n.strip() for n in os.environ.get("AGILEPLUS_METRICS_ALLOW_FROM", "").split(",") if n.strip()]
# A webhook is tried this many times, the wait doubling from WEBHOOK_BACKOFF_SECONDS up to
# WEBHOOK_MAX_BACKOFF_SECONDS; then its delivery is recorded as failed (never dropped).
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("AGILEPLUS_WEBHOOK_MAX_ATTEMPTS", "8"))
WEBHOOK_BACKOFF_SECONDS = float(os.environ.get("AGILEPLUS_WEBHOOK_BACKOFF_SECONDS", "2"))
WEBHOOK_MAX_BACKOFF_SECONDS = float(os.environ.get("AGILEPLUS_WEBHOOK_MAX_BACKOFF_SECONDS", "600"))
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("AGILEPLUS_WEBHOOK_TIMEOUT_SECONDS", "5"))
# Networks a webhook may point into although they are denied by default (loopback, private,
# link-local…), comma-separated CIDRs, e.g. 127.0.0.0/8 for a receiver on this machine.
WEBHOOK_ALLOWED_NETWORKS = [n.strip() for n in os.environ.get("AGILEPLUS_WEBHOOK_ALLOWED_NETWORKS", "").split(",")
                            if n.strip()]
# Retention in days (0 = keep for ever): job log lines of finished jobs, events (published ones
# when NATS is used), webhook deliveries, salvage refs on the origins. The audit chain is never pruned.
RETENTION_JOB_LOG_DAYS = float(os.environ.get("AGILEPLUS_RETENTION_JOB_LOG_DAYS", "30"))
RETENTION_EVENT_DAYS = float(os.environ.get("AGILEPLUS_RETENTION_EVENT_DAYS", "30"))
RETENTION_WEBHOOK_DAYS = float(os.environ.get("AGILEPLUS_RETENTION_WEBHOOK_DAYS", "30"))
RETENTION_SALVAGE_DAYS = float(os.environ.get("AGILEPLUS_RETENTION_SALVAGE_DAYS", "90"))

# --- Web / API -----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
WHITENOISE_USE_FINDERS = True  # serve app static files without a collectstatic step
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agileplus.api.auth.RoleTokenAuthentication",  # keys stored as digests (agileplus.api.tokens)
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "agileplus.api.errors.exception_handler",
    # Writes are rate-limited per user; logins and bad tokens per address (agileplus.api.throttles).
    "DEFAULT_THROTTLE_CLASSES": ["agileplus.api.throttles.ScopedThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "write": os.environ.get("AGILEPLUS_API_WRITE_RATE", "600/min"),
        "auth": os.environ.get("AGILEPLUS_API_AUTH_RATE", "60/min"),
    },
    # The address a budget is counted against: the peer's, unless it is one of this many proxies
    # (then X-Forwarded-For); trusting the header from anyone would give a guesser a fresh budget per request.
    "NUM_PROXIES": int(os.environ.get("AGILEPLUS_API_TRUSTED_PROXIES", "0")),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AgilePlus API",
    "DESCRIPTION": "Features, work packages, dispatch jobs, audit chain and events of an AgilePlus farm.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/schema/ and /api/docs/ describe the endpoints and carry no farm data: public by default
    # (clients generate from them); AGILEPLUS_API_DOCS_PUBLIC=0 asks for a token or a login.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"
                          if os.environ.get("AGILEPLUS_API_DOCS_PUBLIC", "1") != "0"
                          else "rest_framework.permissions.IsAuthenticated"],
    "ENUM_NAME_OVERRIDES": {"WPStateEnum": "agileplus.api.serializers.STATE_CHOICES"},
}

# AGILEPLUS_LOG_FORMAT=json: one JSON object a line, with the job id (containers' stdout); else text.
LOG_FORMAT = "json" if os.environ.get("AGILEPLUS_LOG_FORMAT", "").strip().lower() == "json" else "text"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "json": {"()": "agileplus.core.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "formatter": "json" if LOG_FORMAT == "json" else "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {"agileplus": {"level": os.environ.get("AGILEPLUS_LOG_LEVEL", "INFO"), "propagate": True}},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- CLI ------------------------------------------------------------------------------
# The acting identity when --actor is not given (else human:<login name>).
CLI_ACTOR = os.environ.get("AGILEPLUS_ACTOR", "")
# Show the traceback of an unexpected CLI error instead of one line.
CLI_DEBUG = _env_bool("AGILEPLUS_DEBUG", False)
# A remote farm: the CLI sends its commands to this farm's REST API with this token.
REMOTE_URL = os.environ.get("AGILEPLUS_URL", "")
REMOTE_TOKEN = os.environ.get("AGILEPLUS_TOKEN", "")

# Provenance (agileplus/provenance): the farm's ed25519 signing key (made by `agileplus init`, 0600);
# every host that merges (review workers) needs the same file. OTLP traces when an endpoint is set.
PROVENANCE_KEY_FILE = Path(os.environ.get("AGILEPLUS_PROVENANCE_KEY_FILE") or DATA_DIR / "provenance-ed25519.key")
OTEL_EXPORTER_OTLP_ENDPOINT = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
