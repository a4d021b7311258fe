#!/usr/bin/env bash
# Shared helpers of the dev, test and CI scripts: build pinned tools, start a
# local Postgres (as the postgres user when run as root) and a Temporal dev server.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/bin"
STRIPE_MOCK_VERSION=v0.203.0

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# ensure_temporal builds the Temporal CLI pinned in tools/go.mod (once; ~5 min).
ensure_temporal() {
  if [ -x "$BIN/temporal" ]; then return; fi
  log "building the Temporal CLI from tools/go.mod (first run only, takes a few minutes)"
  mkdir -p "$BIN"
  (cd "$ROOT/tools" && go build -o "$BIN/temporal" github.com/temporalio/cli/cmd/temporal)
}

ensure_stripe_mock() {
  if [ -x "$BIN/stripe-mock" ]; then return; fi
  log "installing stripe-mock $STRIPE_MOCK_VERSION"
  GOBIN="$BIN" go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
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
    --search-attribute BackflowMerchantId=Keyword --search-attribute BackflowRefundStatus=Keyword \
    --search-attribute BackflowProvider=Keyword --search-attribute BackflowMethod=Keyword \
    --search-attribute BackflowStuck=Bool --search-attribute BackflowAmount=Int \
    --log-level error "$@" &
  TEMPORAL_PID=$!
  wait_for "Temporal on 127.0.0.1:$port" "$BIN/temporal" operator namespace describe default --address "127.0.0.1:$port"
}

stop_temporal() {
  if [ -n "${TEMPORAL_PID:-}" ]; then
    kill "$TEMPORAL_PID" 2>/dev/null || true
    wait "$TEMPORAL_PID" 2>/dev/null || true
  fi
}

# start_services NAME PG_PORT TEMPORAL_PORT: a Postgres and a headless
# Temporal dev server in a fresh temporary directory ($WORK), stopped and
# removed when the script exits.
start_services() {
  WORK=$(mktemp -d "/tmp/backflow-$1.XXXXXX")
  chmod 755 "$WORK"
  trap stop_services EXIT
  start_postgres "$WORK/pg" "$2"
  start_temporal "$WORK/temporal.db" "$3" $(($3 + 1000)) --headless
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
