#!/usr/bin/env bash
# The bench command (make bench): brings up a private stack in a temporary
# directory (Postgres with pg_stat_statements, Temporal, the sandbox PSP, the
# worker and the API, each its own process on free ports), then runs
# `backflow bench`: refunds through the API against a baseline workflow of
# four no-op regular activities on the same Temporal server.
#
#   ./scripts/bench.sh [backflow bench flags]     e.g. -n 2000 -c 64
#   BENCH_FLAGS="-n 500" make bench
#   BENCH_TEMPORAL=server (make bench TEMPORAL=server): temporal-server on
#   the stack's Postgres, as make cluster runs it, instead of the dev server.
#   BENCH_PROCS=2: two API and two worker processes (requests round-robin).
#   BENCH_ENDPOINTS=2 BENCH_DEAD_ENDPOINTS=1 (the defaults): the merchant's
#   webhook endpoints in phase (a), all on loopback, the dead ones refusing
#   connections; phase (a0) runs the same refunds without them.
#   BENCH_JSON=out.json (default bin/bench-last.json), BENCH_KEEP=1 keeps the
#   temporary directory and its logs, BENCH_LOG_LEVEL sets the services' log level.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

WORK=$(mktemp -d /tmp/backflow-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
USED_PORTS=""

cleanup() {
  local rc=$?
  set +e
  trap - INT TERM EXIT
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  stop_temporal
  stop_postgres "$WORK/pg"
  if [ "$rc" != 0 ]; then
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- tail of $f"; tail -n 20 "$f"; } >&2; done
  fi
  if [ -n "${BENCH_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup INT TERM EXIT

# free_port VAR: a port nobody listens on (and not handed out already), below
# the kernel's ephemeral range so a random bind elsewhere cannot take it.
free_port() {
  local p
  while :; do
    p=$(( 12000 + RANDOM % 18000 ))
    case " $USED_PORTS " in *" $p "*) continue ;; esac
    if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then
      USED_PORTS="$USED_PORTS $p"
      printf -v "$1" '%s' "$p"
      return
    fi
  done
}
# free_ports VAR N [MAX]: the first of N consecutive free ports below MAX.
free_ports() {
  local base i max=${3:-30000}
  while :; do
    base=$(( 12000 + RANDOM % (max - 12000 - $2) ))
    for ((i = 0; i < $2; i++)); do
      case " $USED_PORTS " in *" $((base + i)) "*) continue 2 ;; esac
      [ -z "$(ss -Htln "sport = :$((base + i))" 2>/dev/null)" ] || continue 2
    done
    for ((i = 0; i < $2; i++)); do USED_PORTS="$USED_PORTS $((base + i))"; done
    printf -v "$1" '%s' "$base"
    return
  done
}

KIND=${BENCH_TEMPORAL:-dev}
PROCS=${BENCH_PROCS:-1}
case "$KIND" in
  dev) ensure_temporal ;;
  server) ensure_temporal_server ;;
  *) log "BENCH_TEMPORAL is dev or server, not '$KIND'"; exit 2 ;;
esac
free_port PG_PORT; free_port UI_PORT
if [ "$KIND" = server ]; then
  # frontend, history, matching, worker, HTTP, metrics; membership below 32768.
  free_ports TEMPORAL_PORT 6; free_ports MEMBERSHIP_PORT 4 32000
else
  free_port TEMPORAL_PORT; free_port TEMPORAL_METRICS_PORT
fi
log "building backflow"
go build -o "$WORK/backflow" ./cmd/backflow
BF="$WORK/backflow"

# Postgres, restarted once with pg_stat_statements loaded so the bench can
# count the statements of a refund (skipped when the module is missing).
start_postgres "$WORK/pg" "$PG_PORT"
PSQL=(as_pg "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
PGSS=""
if [ -f "$(pg_bin)/../lib/pg_stat_statements.so" ]; then
  "${PSQL[@]}" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
  stop_postgres "$WORK/pg"
  start_postgres "$WORK/pg" "$PG_PORT"
  PGSS=1
fi
"${PSQL[@]}" -c "CREATE DATABASE backflow" >/dev/null
[ -n "$PGSS" ] && "${PSQL[@]}" -d backflow -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
PG_PID=$(head -n 1 "$WORK/pg/postmaster.pid")

if [ "$KIND" = server ]; then
  temporal_server_env "$PG_PORT" "$TEMPORAL_PORT" "$MEMBERSHIP_PORT"
  start_temporal_server "$WORK/temporal-server.log"
else
  start_temporal "$WORK/temporal.db" "$TEMPORAL_PORT" "$UI_PORT" --headless --metrics-port "$TEMPORAL_METRICS_PORT"
fi
# Chosen once Temporal holds its own (random) internal ports.
free_port API_PORT; free_port SANDBOX_PORT; free_port WORKER_PORT

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/backflow?sslmode=disable"
export TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export_stack_env "$API_PORT" "$SANDBOX_PORT" "$WORKER_PORT"
export BACKFLOW_LOG_LEVEL="${BENCH_LOG_LEVEL:-INFO}"
# One key drives the whole load: the bench measures the refund path, not the limiter.
export BACKFLOW_RATE_LIMIT=off

"$BF" migrate >/dev/null
API_KEY=$(random_key bf_bench)
OPS_KEY=$(random_key bf_ops)
"$BF" seed --api-key "$API_KEY" --ops-key "$OPS_KEY" >"$WORK/seed.log"

# start SVC N: the Nth process of a service, on its own ports after the first.
PID_FLAGS=()
API_URLS=()
start() {
  local svc=$1 n=$2 api=$BACKFLOW_HTTP_ADDR wrk=$BACKFLOW_WORKER_HTTP_ADDR port
  if [ "$n" -gt 1 ]; then
    free_port port; api="127.0.0.1:$port"
    free_port port; wrk="127.0.0.1:$port"
  fi
  BACKFLOW_HTTP_ADDR=$api BACKFLOW_WORKER_HTTP_ADDR=$wrk "$BF" "$svc" >>"$WORK/$svc-$n.log" 2>&1 &
  PIDS+=($!)
  PID_FLAGS+=(--pid "$svc=$!")
  case "$svc" in
    api) API_URLS+=("http://$api"); wait_for "API on http://$api" curl -fsS "http://$api/readyz" ;;
    worker) wait_for "worker $n" curl -fsS "http://$wrk/healthz" ;;
    sandbox) wait_for "sandbox PSP" bash -c "curl -sS -o /dev/null $BACKFLOW_SANDBOX_URL/" ;;
  esac
}
start sandbox 1
for ((i = 1; i <= PROCS; i++)); do start worker "$i"; done
for ((i = 1; i <= PROCS; i++)); do start api "$i"; done

BENCH_JSON=${BENCH_JSON:-$BIN/bench-last.json}
mkdir -p "$(dirname "$BENCH_JSON")"
log "running backflow bench ${BENCH_FLAGS:-} $* (Temporal: $KIND, $PROCS API and $PROCS worker process(es))"
LABEL="commit $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown), temporal $KIND, ${PROCS}x api+worker"
URLS=$(IFS=,; echo "${API_URLS[*]}")
# BENCH_FLAGS is a list of flags: split on purpose.
# shellcheck disable=SC2086
"$BF" bench --api-url "$URLS" --api-key "$API_KEY" --json "$BENCH_JSON" --label "$LABEL" "${PID_FLAGS[@]}" \
  --pid "temporal=$TEMPORAL_PID" --pid "postgres=$PG_PID" --temporal-metrics "http://127.0.0.1:$TEMPORAL_METRICS_PORT/metrics" \
  -endpoints "${BENCH_ENDPOINTS:-2}" -dead-endpoints "${BENCH_DEAD_ENDPOINTS:-1}" ${BENCH_FLAGS:-} "$@"
