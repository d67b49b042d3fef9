#!/usr/bin/env bash
# Stop what .ci/services-up.sh started (mlflow server, moto, PostgreSQL). Idempotent.
#   --purge   also delete $SVC_STATE (the PostgreSQL cluster, logs, env.sh). moto keeps S3 in
#             memory, so after a stop the artifacts the database still points at are gone:
#             purge when the next run needs a consistent store.
set -euo pipefail
SVC_STATE="${SVC_STATE:-/tmp/svc-ci}"
PURGE=0
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
  esac
done

stop_group() {  # stop_group NAME PIDFILE: TERM the process group services-up made with setsid
  local name=$1 pidfile=$2 pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    echo "services-down: stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# With SVC_MLFLOW_JOBS=true the mlflow server keeps its job queues in a mkdtemp dir under
# /dev/shm that it does not remove when killed: find it in its children's environment first.
HUEY_DIRS=()
if [ -f "$SVC_STATE/mlflow.pid" ]; then
  for child in $(pgrep -g "$(cat "$SVC_STATE/mlflow.pid")" 2>/dev/null || true); do
    d=$(tr '\0' '\n' <"/proc/$child/environ" 2>/dev/null | sed -n 's/^_MLFLOW_HUEY_STORAGE_PATH=//p' || true)
    [ -n "$d" ] && HUEY_DIRS+=("$d")
  done
fi
stop_group mlflow "$SVC_STATE/mlflow.pid"
for d in "${HUEY_DIRS[@]}"; do
  case "$d" in /dev/shm/tmp*|/tmp/tmp*) rm -rf "$d" ;; esac
done
stop_group moto "$SVC_STATE/moto.pid"

PGDATA="$SVC_STATE/pgdata"
if [ -f "$PGDATA/PG_VERSION" ]; then
  PG_BIN="${SVC_PG_BIN:-/usr/lib/postgresql/$(cat "$PGDATA/PG_VERSION")/bin}"
  if [ "$(id -u)" = 0 ]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi
  if as_pg "$PG_BIN/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; then
    echo "services-down: stopping postgres"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA" -m fast -s -w
  fi
fi

if [ "$PURGE" = 1 ] && [ -d "$SVC_STATE" ]; then
  rm -rf "$SVC_STATE"
  echo "services-down: removed $SVC_STATE"
fi
echo "services-down: stopped"
