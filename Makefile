.PHONY: dev test build tools bench soak

# Bring up the whole stack: Postgres, Temporal + UI, sandbox PSP, worker, API.
dev:
	./scripts/dev.sh

# go vet and every test, integration tests included, against a Postgres and
# a Temporal dev server this command starts.
test:
	./scripts/test.sh

build:
	go build -o bin/backflow ./cmd/backflow

tools:
	bash -c 'source scripts/lib.sh && ensure_temporal && ensure_stripe_mock'

# Throughput and latency of the refund path against the baseline workflow.
bench:
	./scripts/bench.sh

# Mixed load with random faults for DURATION (default 2m), then the invariants.
soak:
	./scripts/soak.sh
