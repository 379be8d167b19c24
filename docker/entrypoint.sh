#!/usr/bin/env bash
# Entry point of the AgilePlus image.
#   1. refuses the change-me placeholders of docker/.env.example;
#   2. waits for the database (AGILEPLUS_DB_WAIT_SECONDS, default 60), and but for `agileplus init`
#      and a migrating web, for the migrations to be applied (by compose's migrate service);
#   3. for `agileplus web` only: collectstatic, and migrations (serialized across replicas)
#      unless AGILEPLUS_MIGRATE=0 (compose's one-shot migrate service runs `agileplus init`);
#   4. for `agileplus worker`: a node name and a worker folder of its own, from the
#      container's hostname, so `--scale worker=N` gives N distinct workers; and one line
#      naming the fix when the container cannot sandbox agents (the worker then refuses
#      agent harnesses and its health check stays unhealthy);
#   5. execs the command, which becomes the container's main process and gets its signals.
# Any other command (celery flower, python manage.py shell, bash) is run as given.
set -euo pipefail

APP_DIR="${APP_DIR:-/app}"
PYTHON="${PYTHON:-python}"

die() {
  echo "entrypoint: $*" >&2
  exit 64
}

if [ "$#" -eq 0 ]; then
  set -- agileplus web --host 0.0.0.0 --port "${AGILEPLUS_PORT:-8000}"
fi

for name in SECRET_KEY DATABASE_URL CELERY_BROKER_URL FLOWER_BASIC_AUTH; do
  case "${!name:-}" in
    *change-me*) die "$name still holds a change-me placeholder from docker/.env.example; set a real secret (python -c 'import secrets; print(secrets.token_urlsafe(32))')" ;;
  esac
done

role="other"
if [ "${1:-}" = "agileplus" ] && [ "$#" -ge 2 ]; then
  role="$2"
fi

# Only agileplus commands use the database; --help and --version need nothing.
needs_database=0
if [ "${1:-}" = "agileplus" ] && [ "${AGILEPLUS_SKIP_DB_WAIT:-0}" != "1" ]; then
  needs_database=1
fi
for arg in "$@"; do
  case "$arg" in
    -h|--help|--version) needs_database=0 ;;
  esac
done

prestart=()
if [ "$needs_database" = "1" ]; then
  prestart+=(--wait-db)
  if [ "$role" = "web" ] && [ "${AGILEPLUS_MIGRATE:-1}" = "1" ]; then
    prestart+=(--migrate)
  elif [ "$role" != "init" ]; then
    # the migrate service (or another host) applies them: wait for the schema, do not fail on it
    prestart+=(--wait-migrations)
  fi
  if [ "$role" = "web" ]; then
    prestart+=(--collectstatic)
  fi
  "$PYTHON" "$APP_DIR/docker/prestart.py" "${prestart[@]}"
fi

if [ "$role" = "worker" ]; then
  node="$(hostname)"
  export AGILEPLUS_WORKER_DIR="${AGILEPLUS_WORKER_DIR:-${AGILEPLUS_DATA_DIR:-/var/lib/agileplus}/workers/$node}"
  mkdir -p "$AGILEPLUS_WORKER_DIR"
  has_hostname=0
  for arg in "$@"; do
    case "$arg" in
      --hostname|--hostname=*|-n) has_hostname=1 ;;
    esac
  done
  if [ "$has_hostname" = "0" ]; then
    set -- "$@" --hostname "worker@$node"
  fi
  if [ "${AGILEPLUS_SKIP_SANDBOX_CHECK:-0}" != "1" ]; then
    "$PYTHON" "$APP_DIR/docker/healthcheck.py" sandbox 2>&1 | sed 's/^unhealthy: /entrypoint: /' >&2 || true
  fi
fi

exec "$@"
