#!/usr/bin/env bash
# make lint: gofmt, go vet, staticcheck (pinned), a tidy go.mod and
# the shell linter on scripts/. Installs both linters when absent.
# Every check runs; the exit status says whether any failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_staticcheck
ensure_shellcheck

failed=()
check() {
  local name=$1; shift
  log "$name"
  if ! "$@"; then failed+=("$name"); fi
}
gofmt_clean() {
  local files
  files=$(git ls-files -z '*.go' | xargs -0 gofmt -l)
  if [ -n "$files" ]; then printf 'not gofmt-ed:\n%s\n' "$files"; return 1; fi
}
check gofmt gofmt_clean
check "go vet" go vet ./...
check staticcheck "$BIN/staticcheck" ./...
check "go mod tidy" go mod tidy -diff
check shellcheck shellcheck -x scripts/*.sh .ci/run

if [ ${#failed[@]} -gt 0 ]; then
  log "lint failed: ${failed[*]}"
  exit 1
fi
log "lint passed"
