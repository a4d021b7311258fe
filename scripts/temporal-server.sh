#!/usr/bin/env bash
# One temporal-server run step by step, for tests that kill and restart
# their own server (reliability/services_test.go). The environment
# configures it: the variables of deploy/temporal/server.yaml, as
# temporal_server_env in scripts/lib.sh sets them.
#
#   scripts/temporal-server.sh setup   role, databases and schema (safe to repeat)
#   scripts/temporal-server.sh run     becomes temporal-server (the process to kill)
#   scripts/temporal-server.sh init    default namespace and Backflow's search attributes
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

case "${1:-}" in
  setup) setup_temporal_db ;;
  run) exec "$BIN/temporal-server" "${TEMPORAL_SERVER_ARGS[@]}" ;;
  init) init_temporal_namespace ;;
  *) echo "usage: $0 setup|run|init" >&2; exit 2 ;;
esac
