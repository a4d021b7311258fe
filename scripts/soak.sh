#!/usr/bin/env bash
# make soak: mixed load with random faults for DURATION (default 2m) against
# a Postgres and a Temporal dev server this script starts (as scripts/test.sh
# does), then the invariant checker. Exits non-zero on any violation.
#   DURATION=10m make soak
#   SOAK_ARGS="-clients 16 -seed 42" make soak
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_temporal

PG_PORT=${BACKFLOW_SOAK_PG_PORT:-55449}
TEMPORAL_PORT=${BACKFLOW_SOAK_TEMPORAL_PORT:-7249}
start_services soak "$PG_PORT" "$TEMPORAL_PORT"
as_pg "$(pg_bin)/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres backflow_soak

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/backflow_soak?sslmode=disable"
export TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export DURATION=${DURATION:-2m}

log "soak for $DURATION"
# shellcheck disable=SC2086 # SOAK_ARGS is a list of flags
go run ./internal/rig/cmd/soak ${SOAK_ARGS:-}
