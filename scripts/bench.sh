#!/usr/bin/env bash
# The bench command (make bench): brings up a private stack in a temporary
# directory (Postgres with pg_stat_statements, the Temporal dev server, the
# sandbox PSP, the worker and the API, each its own process on free ports),
# then runs `backflow bench`: refunds through the API against a baseline
# workflow of four no-op regular activities on the same Temporal server.
#
#   ./scripts/bench.sh [backflow bench flags]     e.g. -n 2000 -c 64
#   BENCH_FLAGS="-n 500" make bench
# The merchant gets 3 webhook endpoints for phase (a), one of them dead
# (-endpoints 2 -dead-endpoints 1, all on loopback; phase (a0) runs the same
# refunds without them): BENCH_ENDPOINTS and BENCH_DEAD_ENDPOINTS change that.
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
free_port PG_PORT; free_port TEMPORAL_PORT; free_port UI_PORT; free_port TEMPORAL_METRICS_PORT

ensure_temporal
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

start_temporal "$WORK/temporal.db" "$TEMPORAL_PORT" "$UI_PORT" --headless --metrics-port "$TEMPORAL_METRICS_PORT"
# Chosen once Temporal holds its own (random) internal ports.
free_port API_PORT; free_port SANDBOX_PORT; free_port WORKER_PORT

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/backflow?sslmode=disable"
export TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export_stack_env "$API_PORT" "$SANDBOX_PORT" "$WORKER_PORT"
export BACKFLOW_LOG_LEVEL="${BENCH_LOG_LEVEL:-INFO}"
# The bench's webhook receivers are plain http on loopback.
export BACKFLOW_WEBHOOK_ALLOW_LOOPBACK=true

"$BF" migrate >/dev/null
API_KEY=$(random_key bf_bench)
OPS_KEY=$(random_key bf_ops)
"$BF" seed --api-key "$API_KEY" --ops-key "$OPS_KEY" >"$WORK/seed.log"

declare -A PID_OF
for svc in sandbox worker api; do
  "$BF" "$svc" >>"$WORK/$svc.log" 2>&1 &
  PIDS+=($!)
  PID_OF[$svc]=$!
done
wait_for "API on $BACKFLOW_PUBLIC_URL" curl -fsS "$BACKFLOW_PUBLIC_URL/readyz"
wait_for "worker" curl -fsS "http://$BACKFLOW_WORKER_HTTP_ADDR/healthz"
wait_for "sandbox PSP" bash -c "curl -sS -o /dev/null $BACKFLOW_SANDBOX_URL/"

BENCH_JSON=${BENCH_JSON:-$BIN/bench-last.json}
mkdir -p "$(dirname "$BENCH_JSON")"
log "running backflow bench ${BENCH_FLAGS:-} $*"
LABEL="commit $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
# BENCH_FLAGS is a list of flags: split on purpose.
# shellcheck disable=SC2086
"$BF" bench --api-url "$BACKFLOW_PUBLIC_URL" --api-key "$API_KEY" --json "$BENCH_JSON" --label "$LABEL" \
  --pid "api=${PID_OF[api]}" --pid "worker=${PID_OF[worker]}" --pid "sandbox=${PID_OF[sandbox]}" \
  --pid "temporal=$TEMPORAL_PID" --pid "postgres=$PG_PID" --temporal-metrics "http://127.0.0.1:$TEMPORAL_METRICS_PORT/metrics" \
  -endpoints "${BENCH_ENDPOINTS:-2}" -dead-endpoints "${BENCH_DEAD_ENDPOINTS:-1}" ${BENCH_FLAGS:-} "$@"
