#!/usr/bin/env bash
# The one dev command (make dev): Postgres, Temporal with its UI, migrations,
# the demo merchant, the sandbox PSP, the worker and the API. Temporal is the
# CLI's dev server, or with BACKFLOW_DEV_TEMPORAL=server (make cluster) the
# real temporal-server on that Postgres (deploy/temporal/). Data is kept
# between runs, in .dev/ (dev server) or .dev/cluster/ (temporal-server);
# .dev/demo.env describes the stack that runs. Ctrl-C stops everything.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

KIND=${BACKFLOW_DEV_TEMPORAL:-dev}
case "$KIND" in
  dev | server) ;;
  *) log "BACKFLOW_DEV_TEMPORAL is dev or server, not '$KIND'"; exit 2 ;;
esac
DEV="$ROOT/.dev"
STATE="$DEV"
[ "$KIND" = server ] && STATE="$DEV/cluster"
mkdir -p "$STATE"
chmod 755 "$DEV" "$STATE"
PG_PORT=${BACKFLOW_DEV_PG_PORT:-5433}
API_PORT=${BACKFLOW_DEV_API_PORT:-8080}
SANDBOX_PORT=${BACKFLOW_DEV_SANDBOX_PORT:-8090}
WORKER_PORT=${BACKFLOW_DEV_WORKER_PORT:-9091}
TEMPORAL_PORT=${BACKFLOW_DEV_TEMPORAL_PORT:-7233}
MEMBERSHIP_PORT=${BACKFLOW_DEV_TEMPORAL_MEMBERSHIP_PORT:-$((TEMPORAL_PORT - 300))}
UI_PORT=${BACKFLOW_DEV_UI_PORT:-8233}
PIDS=()

cleanup() {
  set +e
  trap - INT TERM EXIT
  log "stopping"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  stop_temporal
  [ -n "${OWN_PG:-}" ] && stop_postgres "$STATE/pgdata"
  log "stopped"
}
trap cleanup EXIT
# On Ctrl-C, stop and exit rather than go on to report an exited process.
trap 'cleanup; exit 0' INT TERM

if [ "$KIND" = server ]; then ensure_temporal_server; else ensure_temporal; fi
log "building backflow"
go build -o "$BIN/backflow" ./cmd/backflow

# temporal-server keeps its databases in this Postgres too, so it always
# runs for make cluster; DATABASE_URL then only moves Backflow's database.
if [ -z "${DATABASE_URL:-}" ] || [ "$KIND" = server ]; then
  OWN_PG=1
  start_postgres "$STATE/pgdata" "$PG_PORT"
fi
if [ -z "${DATABASE_URL:-}" ]; then
  if ! as_pg "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'backflow'" | grep -q 1; then
    as_pg "$(pg_bin)/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres backflow
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/backflow?sslmode=disable"
fi

if [ "$KIND" = server ]; then
  temporal_server_env "$PG_PORT" "$TEMPORAL_PORT" "$MEMBERSHIP_PORT"
  start_temporal_server "$STATE/temporal-server.log"
  start_temporal_ui "$UI_PORT" "$STATE/temporal-ui.log"
else
  start_temporal "$DEV/temporal.db" "$TEMPORAL_PORT" "$UI_PORT"
fi

export TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export_stack_env "$API_PORT" "$SANDBOX_PORT" "$WORKER_PORT"

"$BIN/backflow" migrate

# Demo keys are made once and kept, so a second run prints the same ones.
if [ ! -f "$DEV/keys.env" ]; then
  printf 'API_KEY=%s\nOPS_KEY=%s\n' "$(random_key bf_demo)" "$(random_key bf_ops)" > "$DEV/keys.env"
fi
source "$DEV/keys.env"
SEED=$("$BIN/backflow" seed --api-key "$API_KEY" --ops-key "$OPS_KEY")
[ -n "$SEED" ] && echo "$SEED" | tee "$STATE/seed.log"

for svc in sandbox worker api; do
  "$BIN/backflow" "$svc" >>"$STATE/$svc.log" 2>&1 &
  PIDS+=($!)
done
wait_for "API on $BACKFLOW_PUBLIC_URL" curl -fsS "$BACKFLOW_PUBLIC_URL/readyz"

LOGS="${STATE#"$ROOT/"}/*.log"
TEMPORAL_KIND="dev server, .dev/temporal.db"
[ "$KIND" = server ] && TEMPORAL_KIND="temporal-server, Postgres persistence and SQL visibility"
SAMPLE_SESSION=$(grep -m1 'cardpay' "$STATE/seed.log" | sed -n 's/.*session=\([^ ]*\).*/\1/p' || true)
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

Backflow is running (logs in $LOGS; values in .dev/demo.env):
  API           $BACKFLOW_PUBLIC_URL   (OpenAPI: $BACKFLOW_PUBLIC_URL/openapi.json)
  Temporal UI   http://127.0.0.1:$UI_PORT
  Temporal      $TEMPORAL_ADDRESS   ($TEMPORAL_KIND)
  Metrics       $BACKFLOW_PUBLIC_URL/metrics, http://127.0.0.1:$WORKER_PORT/metrics
  Sandbox PSP   $BACKFLOW_SANDBOX_URL
  API key       $API_KEY
  Ops key       $OPS_KEY

Try a refund (cardpay sample session; amount ending in 00 succeeds at once):
  source .dev/demo.env
  curl -s -X POST \$BACKFLOW_URL/v1/refunds -H "Authorization: Bearer \$BACKFLOW_API_KEY" \\
    -H 'Content-Type: application/json' -H "Idempotency-Key: \$(date +%s)" \\
    -d '{"sessionId":"${SAMPLE_SESSION:-<session id from ${STATE#"$ROOT/"}/seed.log>}","refundValue":{"amount":1000,"currency":"EUR"},"reason":"demo"}'

Press Ctrl-C to stop.
MSG
# No UI process (the dev server serves its own UI): no argument.
# shellcheck disable=SC2086
wait -n "${PIDS[@]}" "$TEMPORAL_PID" ${TEMPORAL_UI_PID:-} || true
log "a process exited; see $LOGS"
