#!/usr/bin/env bash
# The one test command (make test): starts one Postgres and one Temporal dev
# server for the whole run, then runs go vet and every test against them.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_temporal
ensure_stripe_mock

PG_PORT=${BACKFLOW_TEST_PG_PORT:-55439}
TEMPORAL_PORT=${BACKFLOW_TEST_TEMPORAL_PORT:-7239}
start_services test "$PG_PORT" "$TEMPORAL_PORT"

export BACKFLOW_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
export BACKFLOW_TEST_TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export BACKFLOW_TEST_PG_DATA="$WORK/pg"
export STRIPE_MOCK_BIN="$BIN/stripe-mock" TEMPORAL_CLI_BIN="$BIN/temporal"

log "go vet ./..."
go vet ./...
log "go test ./..."
go test -count=1 -p 2 -timeout 20m "$@" ./...
log "fuzz the create-refund handler for 15s (seed corpus: server/testdata/fuzz)"
go test -run '^$' -fuzz=FuzzCreateRefund -fuzztime=15s ./server
