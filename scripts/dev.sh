#!/usr/bin/env bash
# The one dev command (make dev): Postgres, the Temporal dev server with its
# UI, migrations, the demo merchant, the sandbox PSP, the worker and the API.
# Data is kept in .dev/ between runs; Ctrl-C stops everything.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

DEV="$ROOT/.dev"
mkdir -p "$DEV"
chmod 755 "$DEV"
PG_PORT=${BACKFLOW_DEV_PG_PORT:-5433}
API_PORT=${BACKFLOW_DEV_API_PORT:-8080}
SANDBOX_PORT=${BACKFLOW_DEV_SANDBOX_PORT:-8090}
WORKER_PORT=${BACKFLOW_DEV_WORKER_PORT:-9091}
TEMPORAL_PORT=${BACKFLOW_DEV_TEMPORAL_PORT:-7233}
UI_PORT=${BACKFLOW_DEV_UI_PORT:-8233}
PIDS=()

cleanup() {
  set +e
  trap - INT TERM EXIT
  log "stopping"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  stop_temporal
  [ -n "${OWN_PG:-}" ] && stop_postgres "$DEV/pgdata"
  log "stopped"
}
trap cleanup EXIT
# On Ctrl-C, stop and exit rather than go on to report an exited process.
trap 'cleanup; exit 0' INT TERM

ensure_temporal
log "building backflow"
go build -o "$BIN/backflow" ./cmd/backflow

if [ -z "${DATABASE_URL:-}" ]; then
  OWN_PG=1
  start_postgres "$DEV/pgdata" "$PG_PORT"
  if ! as_pg "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'backflow'" | grep -q 1; then
    as_pg "$(pg_bin)/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres backflow
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/backflow?sslmode=disable"
fi

start_temporal "$DEV/temporal.db" "$TEMPORAL_PORT" "$UI_PORT"

export TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export_stack_env "$API_PORT" "$SANDBOX_PORT" "$WORKER_PORT"

"$BIN/backflow" migrate

# Demo keys are made once and kept, so a second run prints the same ones.
if [ ! -f "$DEV/keys.env" ]; then
  printf 'API_KEY=%s\nOPS_KEY=%s\n' "$(random_key bf_demo)" "$(random_key bf_ops)" > "$DEV/keys.env"
fi
source "$DEV/keys.env"
SEED=$("$BIN/backflow" seed --api-key "$API_KEY" --ops-key "$OPS_KEY")
[ -n "$SEED" ] && echo "$SEED" | tee "$DEV/seed.log"

for svc in sandbox worker api; do
  "$BIN/backflow" "$svc" >>"$DEV/$svc.log" 2>&1 &
  PIDS+=($!)
done
wait_for "API on $BACKFLOW_PUBLIC_URL" curl -fsS "$BACKFLOW_PUBLIC_URL/readyz"

SAMPLE_SESSION=$(grep -m1 'cardpay' "$DEV/seed.log" | sed -n 's/.*session=\([^ ]*\).*/\1/p' || true)
cat > "$DEV/demo.env" <<ENV
export BACKFLOW_URL=$BACKFLOW_PUBLIC_URL
export BACKFLOW_API_KEY=$API_KEY
export BACKFLOW_OPS_KEY=$OPS_KEY
export TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS
export TEMPORAL_UI_URL=http://127.0.0.1:$UI_PORT
export BACKFLOW_METRICS_URL=$BACKFLOW_PUBLIC_URL/metrics
export BACKFLOW_WORKER_METRICS_URL=http://127.0.0.1:$WORKER_PORT/metrics
export BACKFLOW_SANDBOX_URL=$BACKFLOW_SANDBOX_URL
ENV

cat <<MSG

Backflow is running (logs in .dev/*.log; values in .dev/demo.env):
  API           $BACKFLOW_PUBLIC_URL   (OpenAPI: $BACKFLOW_PUBLIC_URL/openapi.json)
  Temporal UI   http://127.0.0.1:$UI_PORT
  Temporal      $TEMPORAL_ADDRESS
  Metrics       $BACKFLOW_PUBLIC_URL/metrics, http://127.0.0.1:$WORKER_PORT/metrics
  Sandbox PSP   $BACKFLOW_SANDBOX_URL
  API key       $API_KEY
  Ops key       $OPS_KEY

Try a refund (cardpay sample session; amount ending in 00 succeeds at once):
  source .dev/demo.env
  curl -s -X POST \$BACKFLOW_URL/v1/refunds -H "Authorization: Bearer \$BACKFLOW_API_KEY" \\
    -H 'Content-Type: application/json' -H "Idempotency-Key: \$(date +%s)" \\
    -d '{"sessionId":"${SAMPLE_SESSION:-<session id from .dev/seed.log>}","refundValue":{"amount":1000,"currency":"EUR"},"reason":"demo"}'

Press Ctrl-C to stop.
MSG
wait -n "${PIDS[@]}" "$TEMPORAL_PID" || true
log "a process exited; see .dev/*.log"
