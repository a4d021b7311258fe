#!/usr/bin/env bash
# The one test command (make test): starts one Postgres and one Temporal for
# the whole run, then runs go vet and every test against them. Temporal is
# the CLI's dev server, or with BACKFLOW_TEST_TEMPORAL=server the real
# temporal-server on that Postgres (deploy/temporal/, as make cluster runs it).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

KIND=${BACKFLOW_TEST_TEMPORAL:-dev}
case "$KIND" in
  dev) ensure_temporal ;;
  server) ensure_temporal_server ;;
  *) log "BACKFLOW_TEST_TEMPORAL is dev or server, not '$KIND'"; exit 2 ;;
esac
ensure_stripe_mock

PG_PORT=${BACKFLOW_TEST_PG_PORT:-55439}
TEMPORAL_PORT=${BACKFLOW_TEST_TEMPORAL_PORT:-7239}
MEMBERSHIP_PORT=${BACKFLOW_TEST_TEMPORAL_MEMBERSHIP_PORT:-$((TEMPORAL_PORT - 300))}
start_services test "$PG_PORT" "$TEMPORAL_PORT" "$KIND" "$MEMBERSHIP_PORT"

export BACKFLOW_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
export BACKFLOW_TEST_TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export BACKFLOW_TEST_PG_DATA="$WORK/pg"
# Tests that restart Temporal start one of the same kind (reliability/services_test.go).
export BACKFLOW_TEST_TEMPORAL="$KIND"
export STRIPE_MOCK_BIN="$BIN/stripe-mock" TEMPORAL_CLI_BIN="$BIN/temporal"
# Processes the tests start deliver webhooks to receivers on loopback.
export BACKFLOW_WEBHOOK_ALLOW_LOOPBACK=true

log "go vet ./..."
go vet ./...
log "go test ./... (Temporal: $KIND)"
go test -count=1 -p 2 -timeout 20m "$@" ./...
log "fuzz the create-refund handler for 15s (seed corpus: server/testdata/fuzz)"
go test -run '^$' -fuzz=FuzzCreateRefund -fuzztime=15s ./server
