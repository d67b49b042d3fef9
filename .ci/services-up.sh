#!/usr/bin/env bash
# Start the "scale-out" test services, all on 127.0.0.1, state under $SVC_STATE:
#   PostgreSQL  (Debian's package; own cluster in $SVC_STATE/pgdata)   MLflow's backend store
#   moto server (S3 API, in memory)                                    MLflow artifacts + DVC remote
#   mlflow server (--serve-artifacts: clients see mlflow-artifacts:/ URIs, the server
#                  writes them to s3://$SVC_MLFLOW_BUCKET on moto)
# Idempotent: what is already running (pid file + answering) is left alone. No systemd needed.
# Writes $SVC_STATE/env.sh (source it in the client shell/test) and prints the setup time.
# Stop with .ci/services-down.sh (--purge also deletes $SVC_STATE: moto keeps S3 in memory,
# so the S3 data is gone once it stops anyway).
#
# Python: the project's .venv (`make install-test` puts moto, boto3 and psycopg2 there).
set -euo pipefail
T0=$(date +%s.%N)
REPO="$(cd "$(dirname "$0")/.." && pwd)"

SVC_STATE="${SVC_STATE:-/tmp/svc-ci}"
SVC_PG_PORT="${SVC_PG_PORT:-25432}"
SVC_S3_PORT="${SVC_S3_PORT:-25900}"
SVC_MLFLOW_PORT="${SVC_MLFLOW_PORT:-25500}"
SVC_MLFLOW_WORKERS="${SVC_MLFLOW_WORKERS:-2}"   # uvicorn worker processes
# MLflow 3's server also starts a job runner with 7 huey consumer processes (~1.4 GB RSS) for
# GenAI jobs (scorers, trace rollups, ...). Off unless SVC_MLFLOW_JOBS=true.
SVC_MLFLOW_JOBS="${SVC_MLFLOW_JOBS:-false}"
# Host headers the server accepts; its default is localhost/127.0.0.1 + private IPs (any port).
SVC_MLFLOW_ALLOWED_HOSTS="${SVC_MLFLOW_ALLOWED_HOSTS:-}"
SVC_PG_DB="${SVC_PG_DB:-mlflow}"
SVC_PG_USER="${SVC_PG_USER:-mlflow}"
SVC_PG_PASSWORD="${SVC_PG_PASSWORD:-mlflow}"
SVC_MLFLOW_BUCKET="${SVC_MLFLOW_BUCKET:-mlflow-artifacts}"
SVC_DVC_BUCKET="${SVC_DVC_BUCKET:-dvc-remote}"
SVC_VENV="${SVC_VENV:-$REPO/.venv}"
SVC_WAIT="${SVC_WAIT:-60}"   # seconds to wait for each service to answer

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
S3_URL="http://127.0.0.1:$SVC_S3_PORT"
MLFLOW_URL="http://127.0.0.1:$SVC_MLFLOW_PORT"
PG_URI="postgresql://$SVC_PG_USER:$SVC_PG_PASSWORD@127.0.0.1:$SVC_PG_PORT/$SVC_PG_DB"
# The services talk to each other over 127.0.0.1 only; never through a proxy.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

elapsed() { awk -v now="$(date +%s.%N)" -v t0="$T0" 'BEGIN { printf "%.1f", now - t0 }'; }
log() { printf '[services-up %5ss] %s\n' "$(elapsed)" "$*"; }
die() { echo "services-up: $*" >&2; exit 1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() {  # wait_for NAME COMMAND...: retry until it succeeds or $SVC_WAIT seconds pass
  local name=$1 i; shift
  for ((i = 0; i < SVC_WAIT * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$name did not answer within ${SVC_WAIT}s (logs in $SVC_STATE)"
}
http_ok() { curl -fsS --noproxy '*' -m 2 -o /dev/null "$1"; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

mkdir -p "$SVC_STATE"
chmod 755 "$SVC_STATE"

# --- packages -----------------------------------------------------------------------------
PG_BIN="${SVC_PG_BIN:-}"
if [ -z "$PG_BIN" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
fi
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  log "installing postgresql (apt)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  for i in 1 2 3 4 5 6 7 8 9 10; do   # another apt may hold the lists lock
    $SUDO apt-get update -qq && break
    [ "$i" = 10 ] && die "apt-get update failed"; sleep 15
  done
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 postgresql >/dev/null
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi
command -v curl >/dev/null || die "curl is needed"

PY="$SVC_VENV/bin/python"
# find_spec, not import: importing mlflow alone takes seconds
"$PY" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("moto", "boto3", "psycopg2", "mlflow", "dvc_s3")))' \
  || die "$SVC_VENV lacks moto, boto3, psycopg2, mlflow or dvc-s3: run make install-test"

# --- PostgreSQL ---------------------------------------------------------------------------
PGDATA="$SVC_STATE/pgdata"
PGSOCK="$SVC_STATE/pgsock"
PGLOG="$SVC_STATE/postgres.log"
if [ "$(id -u)" = 0 ]; then
  as_pg() { runuser -u postgres -- "$@"; }   # postgres refuses to run as root
  PG_OWNER=postgres
else
  as_pg() { "$@"; }
  PG_OWNER=$(id -un)
fi
pg_up() { as_pg "$PG_BIN/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; }

if [ ! -f "$PGDATA/PG_VERSION" ]; then
  log "initdb $PGDATA"
  mkdir -p "$PGDATA" "$PGSOCK"
  chown "$PG_OWNER" "$PGDATA" "$PGSOCK"
  chmod 700 "$PGDATA"
  as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$SVC_STATE/initdb.log"
  cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $SVC_PG_PORT
unix_socket_directories = '$PGSOCK'
max_connections = 200
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
fi
PG_STARTED=0
if ! pg_up; then
  port_free "$SVC_PG_PORT" || die "port $SVC_PG_PORT is taken by something else (SVC_PG_PORT)"
  log "starting postgres on 127.0.0.1:$SVC_PG_PORT"
  as_pg touch "$PGLOG" 2>/dev/null || { touch "$PGLOG"; chown "$PG_OWNER" "$PGLOG"; }
  as_pg "$PG_BIN/pg_ctl" start -D "$PGDATA" -l "$PGLOG" -s -o "-p $SVC_PG_PORT" -W
  PG_STARTED=1
fi

# --- moto (S3) ----------------------------------------------------------------------------
MOTO_PID="$SVC_STATE/moto.pid"
if ! alive "$MOTO_PID"; then
  port_free "$SVC_S3_PORT" || die "port $SVC_S3_PORT is taken by something else (SVC_S3_PORT)"
  log "starting moto S3 on $S3_URL"
  # setsid: its own process group (services-down kills the group), detached from this shell
  setsid "$PY" -m moto.server --host 127.0.0.1 --port "$SVC_S3_PORT" \
    >"$SVC_STATE/moto.log" 2>&1 </dev/null &
  echo $! >"$MOTO_PID"
fi

# --- wait for both, then create the database and the buckets -----------------------------
if [ "$PG_STARTED" = 1 ]; then
  wait_for postgres "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$SVC_PG_PORT"
fi
psql_admin() { as_pg "$PG_BIN/psql" -h "$PGSOCK" -p "$SVC_PG_PORT" -U postgres -d postgres -qtAX -v ON_ERROR_STOP=1 "$@"; }
if [ "$(psql_admin -c "select 1 from pg_roles where rolname = '$SVC_PG_USER'")" != 1 ]; then
  psql_admin -c "create role \"$SVC_PG_USER\" login password '$SVC_PG_PASSWORD'"
fi
if [ "$(psql_admin -c "select 1 from pg_database where datname = '$SVC_PG_DB'")" != 1 ]; then
  psql_admin -c "create database \"$SVC_PG_DB\" owner \"$SVC_PG_USER\""
fi

alive "$MOTO_PID" || die "moto exited: $(tail -n 20 "$SVC_STATE/moto.log")"
wait_for moto http_ok "$S3_URL/moto-api/"
for bucket in "$SVC_MLFLOW_BUCKET" "$SVC_DVC_BUCKET"; do
  # moto does not check signatures: a plain PUT creates the bucket (us-east-1, no
  # LocationConstraint); 200 also when it exists already.
  curl -fsS --noproxy '*' -m 5 -o /dev/null -X PUT "$S3_URL/$bucket" || die "cannot create bucket $bucket"
done

# --- MLflow tracking server ---------------------------------------------------------------
MLFLOW_PID="$SVC_STATE/mlflow.pid"
if ! alive "$MLFLOW_PID"; then
  port_free "$SVC_MLFLOW_PORT" || die "port $SVC_MLFLOW_PORT is taken by something else (SVC_MLFLOW_PORT)"
  log "starting mlflow server on $MLFLOW_URL ($SVC_MLFLOW_WORKERS workers)"
  # The server (not the clients) writes artifacts to S3: it needs the endpoint and credentials.
  MLFLOW_S3_ENDPOINT_URL="$S3_URL" MLFLOW_SERVER_ENABLE_JOB_EXECUTION="$SVC_MLFLOW_JOBS" \
  setsid "$PY" -m mlflow server \
    --backend-store-uri "$PG_URI" \
    --serve-artifacts --artifacts-destination "s3://$SVC_MLFLOW_BUCKET/mlartifacts" \
    --host 127.0.0.1 --port "$SVC_MLFLOW_PORT" --workers "$SVC_MLFLOW_WORKERS" \
    ${SVC_MLFLOW_ALLOWED_HOSTS:+--allowed-hosts "$SVC_MLFLOW_ALLOWED_HOSTS"} \
    >"$SVC_STATE/mlflow.log" 2>&1 </dev/null &
  echo $! >"$MLFLOW_PID"
fi
mlflow_ok() { alive "$MLFLOW_PID" || die "mlflow exited: $(tail -n 30 "$SVC_STATE/mlflow.log")"; http_ok "$MLFLOW_URL/health"; }
wait_for mlflow mlflow_ok

# --- env file for clients -----------------------------------------------------------------
cat >"$SVC_STATE/env.sh" <<EOF
# written by .ci/services-up.sh; source it before running clients/tests
export MLFLOW_TRACKING_URI=$MLFLOW_URL
export MLFLOW_S3_ENDPOINT_URL=$S3_URL
export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_DEFAULT_REGION=$AWS_DEFAULT_REGION
export AWS_ENDPOINT_URL_S3=$S3_URL
export SVC_S3_ENDPOINT_URL=$S3_URL
export SVC_MLFLOW_BUCKET=$SVC_MLFLOW_BUCKET
export SVC_DVC_BUCKET=$SVC_DVC_BUCKET
export SVC_DVC_REMOTE_URL=s3://$SVC_DVC_BUCKET/dvc
export SVC_PG_URI=$PG_URI
export SVC_VENV=$SVC_VENV
export SVC_STATE=$SVC_STATE
export NO_PROXY=$NO_PROXY
export no_proxy=$no_proxy
EOF
log "up: postgres 127.0.0.1:$SVC_PG_PORT, S3 $S3_URL, mlflow $MLFLOW_URL; env in $SVC_STATE/env.sh"
echo "services-up: setup took $(elapsed) s"
