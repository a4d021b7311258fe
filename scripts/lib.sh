#!/usr/bin/env bash
# Shared helpers of the dev, test and CI scripts: build pinned tools, start a
# local Postgres (as the postgres user when run as root), and a Temporal dev
# server or a Temporal server on that Postgres (deploy/temporal/).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/bin"
STRIPE_MOCK_VERSION=v0.203.0
STATICCHECK_VERSION=v0.8.2

# Backflow's custom search attributes (workflows.SearchAttributeKeys), NAME=Type.
SEARCH_ATTRIBUTES=(BackflowMerchantId=Keyword BackflowRefundStatus=Keyword BackflowProvider=Keyword
  BackflowMethod=Keyword BackflowStuck=Bool BackflowAmount=Int)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# build_tool NAME PACKAGE: builds a tool pinned in tools/go.mod into bin/NAME
# (once; the Temporal binaries take a few minutes on a cold build cache).
build_tool() {
  if [ -x "$BIN/$1" ]; then return; fi
  log "building $1 from tools/go.mod (first run only, takes a few minutes)"
  mkdir -p "$BIN"
  (cd "$ROOT/tools" && go build -o "$BIN/$1" "$2")
}

# ensure_temporal builds the Temporal CLI (and its dev server).
ensure_temporal() { build_tool temporal github.com/temporalio/cli/cmd/temporal; }

# ensure_temporal_server builds the Temporal server, its SQL schema tool and
# the Temporal UI server, of the versions the CLI pins, and the CLI itself
# (it registers the namespace and the search attributes).
ensure_temporal_server() {
  build_tool temporal-server go.temporal.io/server/cmd/server
  build_tool temporal-sql-tool go.temporal.io/server/cmd/tools/sql
  build_tool temporal-ui-server github.com/temporalio/ui-server/v2/cmd/server
  ensure_temporal
}

ensure_stripe_mock() {
  if [ -x "$BIN/stripe-mock" ]; then return; fi
  log "installing stripe-mock $STRIPE_MOCK_VERSION"
  GOBIN="$BIN" go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
}

ensure_staticcheck() {
  if [ -x "$BIN/staticcheck" ]; then return; fi
  log "installing staticcheck $STATICCHECK_VERSION"
  GOBIN="$BIN" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
}

# ensure_shellcheck installs shellcheck from the machine's packages when absent.
ensure_shellcheck() {
  if command -v shellcheck >/dev/null; then return; fi
  log "installing shellcheck from the machine's packages"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
  $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq shellcheck >&2
}

# pg_bin finds the Postgres server binaries, installing them when absent.
pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return; fi
  log "installing the Postgres server from the machine's packages"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  for d in /usr/lib/postgresql/*/bin; do echo "$d"; return; done
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres DATADIR PORT: initdb when new, then start; trust auth on loopback only.
start_postgres() {
  local data=$1 port=$2 bin
  bin=$(pg_bin)
  mkdir -p "$data"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown -R postgres "$data"; chmod 700 "$data"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising Postgres in $data"
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off" start >/dev/null; then
    tail -n 5 "$data/server.log" >&2
    log "Postgres did not start on port $port (in use? the scripts read their ports from BACKFLOW_*_PORT variables, see README)"
    return 1
  fi
  log "Postgres on 127.0.0.1:$port"
}

stop_postgres() {
  local data=$1 bin
  bin=$(pg_bin)
  as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}

# start_temporal DBFILE PORT UIPORT [extra flags]: the dev server with a WAL
# file database, eager activities, one task-queue partition and our search
# attributes. They exist from the start, so the dev server's default of
# re-reading them from its database on every use (about 20 serialized reads
# per refund, see docs/benchmarks.md) is turned off.
start_temporal() {
  local db=$1 port=$2 ui=$3; shift 3
  "$BIN/temporal" server start-dev --db-filename "$db" --port "$port" --ui-port "$ui" \
    --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=NORMAL \
    --dynamic-config-value system.enableActivityEagerExecution=true \
    --dynamic-config-value matching.numTaskqueueReadPartitions=1 \
    --dynamic-config-value matching.numTaskqueueWritePartitions=1 \
    --dynamic-config-value system.forceSearchAttributesCacheRefreshOnRead=false \
    "${SEARCH_ATTRIBUTES[@]/#/--search-attribute=}" \
    --log-level error "$@" &
  TEMPORAL_PID=$!
  wait_for "Temporal on 127.0.0.1:$port" "$BIN/temporal" operator namespace describe default --address "127.0.0.1:$port"
}

# stop_temporal stops the Temporal server (dev server or temporal-server) and
# the Temporal UI server this script started.
stop_temporal() {
  local pid
  for pid in ${TEMPORAL_UI_PID:-} ${TEMPORAL_PID:-}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# temporal_server_env PG_PORT PORT MEMBERSHIP_PORT: the variables of
# deploy/temporal/server.yaml for a temporal-server on this machine. Its
# databases live in the Postgres on PG_PORT (role temporal); it listens on
# 127.0.0.1 only: gRPC of frontend, history, matching and worker on PORT to
# PORT+3, the frontend's HTTP API on PORT+4, Prometheus metrics on PORT+5,
# and ringpop membership of the four services on MEMBERSHIP_PORT to +3
# (below 32768: the server stores them as a Postgres smallint).
temporal_server_env() {
  local p=$2 m=$3
  if [ $((m + 3)) -gt 32767 ]; then
    log "temporal-server membership ports must be below 32768, not $m to $((m + 3))"
    return 1
  fi
  export TEMPORAL_DB_HOST=127.0.0.1 TEMPORAL_DB_PORT=$1 TEMPORAL_DB_USER=temporal
  export TEMPORAL_DB=temporal TEMPORAL_VISIBILITY_DB=temporal_visibility
  export TEMPORAL_BIND_IP=127.0.0.1
  export TEMPORAL_FRONTEND_PORT=$p TEMPORAL_HISTORY_PORT=$((p + 1)) TEMPORAL_MATCHING_PORT=$((p + 2))
  export TEMPORAL_WORKER_PORT=$((p + 3)) TEMPORAL_FRONTEND_HTTP_PORT=$((p + 4)) TEMPORAL_METRICS_PORT=$((p + 5))
  export TEMPORAL_FRONTEND_MEMBERSHIP_PORT=$m TEMPORAL_HISTORY_MEMBERSHIP_PORT=$((m + 1))
  export TEMPORAL_MATCHING_MEMBERSHIP_PORT=$((m + 2)) TEMPORAL_WORKER_MEMBERSHIP_PORT=$((m + 3))
  export TEMPORAL_DYNAMIC_CONFIG="$ROOT/deploy/temporal/dynamicconfig.yaml"
}

# quietly CMD...: runs CMD, showing its output only when it fails.
quietly() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" | tail -n 20 >&2
    return 1
  fi
}

# ensure_pg_role PG_PORT ROLE: a login role that may create databases, in
# the local Postgres on PG_PORT.
ensure_pg_role() {
  local psql=(as_pg "$(pg_bin)/psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -qtA)
  if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$2'")" ]; then
    "${psql[@]}" -c "CREATE ROLE $2 LOGIN CREATEDB" >/dev/null
  fi
}

# setup_temporal_db: the two databases of temporal-server ($TEMPORAL_DB*, see
# temporal_server_env), with the schema embedded in temporal-sql-tool brought
# to its latest version. Safe to run again: it only applies what is missing.
setup_temporal_db() {
  local db schema sql
  for db in "${TEMPORAL_DB:-temporal}:temporal" "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}:visibility"; do
    schema=${db#*:} db=${db%%:*}
    sql=("$BIN/temporal-sql-tool" --plugin postgres12 --endpoint "${TEMPORAL_DB_HOST:-127.0.0.1}"
      --port "${TEMPORAL_DB_PORT:-5432}" --user "${TEMPORAL_DB_USER:-temporal}" --password "${TEMPORAL_DB_PASSWORD:-}" --database "$db")
    quietly "${sql[@]}" create-database
    quietly "${sql[@]}" setup-schema -v 0.0
    quietly "${sql[@]}" update-schema --schema-name "postgresql/v12/$schema"
  done
}

# The temporal-server command line: deploy/temporal/server.yaml, every
# service in one process, no authorizer (loopback only).
TEMPORAL_SERVER_ARGS=(--root "$ROOT" --config deploy/temporal --env server --allow-no-auth start)

# init_temporal_namespace: once temporal-server answers on 127.0.0.1, the
# default namespace (72 h retention) and Backflow's search attributes on it,
# then waits until a visibility query on them works.
init_temporal_namespace() {
  local addr="127.0.0.1:${TEMPORAL_FRONTEND_PORT:-7233}"
  local cli=("$BIN/temporal" --address "$addr")
  wait_for "temporal-server on $addr" "${cli[@]}" operator cluster health
  if ! "${cli[@]}" operator namespace describe --namespace default >/dev/null 2>&1; then
    quietly "${cli[@]}" operator namespace create --namespace default --retention 72h
  fi
  local sa args=()
  for sa in "${SEARCH_ATTRIBUTES[@]}"; do args+=(--name "${sa%%=*}" --type "${sa#*=}"); done
  wait_for "search attributes" "${cli[@]}" operator search-attribute create --namespace default "${args[@]}"
  wait_for "visibility queries on them" "${cli[@]}" workflow list --namespace default --query 'BackflowStuck=true' --limit 1
}

# start_temporal_server LOGFILE: temporal-server with the environment of
# temporal_server_env, its databases set up first, logging to LOGFILE.
start_temporal_server() {
  ensure_pg_role "$TEMPORAL_DB_PORT" "$TEMPORAL_DB_USER"
  setup_temporal_db
  "$BIN/temporal-server" "${TEMPORAL_SERVER_ARGS[@]}" >>"$1" 2>&1 &
  TEMPORAL_PID=$!
  if ! init_temporal_namespace; then
    tail -n 20 "$1" >&2
    return 1
  fi
}

# start_temporal_ui PORT LOGFILE: the Temporal UI (deploy/temporal/ui.yaml) for the
# temporal-server of temporal_server_env.
start_temporal_ui() {
  TEMPORAL_UI_PORT=$1 TEMPORAL_UI_TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_FRONTEND_PORT" \
    "$BIN/temporal-ui-server" --root "$ROOT" --config deploy/temporal --env ui start >>"$2" 2>&1 &
  TEMPORAL_UI_PID=$!
  wait_for "Temporal UI on http://127.0.0.1:$1" curl -fsS -o /dev/null "http://127.0.0.1:$1/"
}

# start_services NAME PG_PORT TEMPORAL_PORT [server MEMBERSHIP_PORT]: a
# Postgres and a headless Temporal in a fresh temporary directory ($WORK),
# stopped and removed when the script exits. Temporal is the dev server, or
# with "server" a temporal-server on that Postgres (see temporal_server_env).
start_services() {
  WORK=$(mktemp -d "/tmp/backflow-$1.XXXXXX")
  chmod 755 "$WORK"
  trap stop_services EXIT
  start_postgres "$WORK/pg" "$2"
  if [ "${4:-dev}" = server ]; then
    temporal_server_env "$2" "$3" "$5"
    start_temporal_server "$WORK/temporal-server.log"
  else
    start_temporal "$WORK/temporal.db" "$3" $(($3 + 1000)) --headless
  fi
}

stop_services() {
  set +e
  stop_temporal
  stop_postgres "$WORK/pg"
  rm -rf "$WORK"
}

# export_stack_env API_PORT SANDBOX_PORT WORKER_PORT: where the Backflow
# processes listen and find each other on this machine.
export_stack_env() {
  export BACKFLOW_HTTP_ADDR="127.0.0.1:$1"
  export BACKFLOW_PUBLIC_URL="http://127.0.0.1:$1"
  export BACKFLOW_SANDBOX_ADDR="127.0.0.1:$2"
  export BACKFLOW_SANDBOX_URL="http://127.0.0.1:$2"
  export BACKFLOW_WORKER_HTTP_ADDR="127.0.0.1:$3"
  # The API runs a worker too, so refund workflows start eagerly.
  export BACKFLOW_API_WORKER=true
  # Webhook receivers of a local stack run on this machine.
  export BACKFLOW_WEBHOOK_ALLOW_LOOPBACK=true
}

# random_key PREFIX: a fresh API key.
random_key() { printf '%s_%s' "$1" "$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"; }

# wait_for WHAT CMD...: retry CMD for up to 60 s.
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then log "$what is up"; return 0; fi
    sleep 0.5
  done
  log "$what did not come up"; return 1
}
