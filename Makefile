.PHONY: dev cluster test lint build tools bench soak

# Bring up the whole stack: Postgres, Temporal + UI, sandbox PSP, worker, API.
# Temporal is the CLI's dev server; TEMPORAL=server (or make cluster) runs
# temporal-server on Postgres instead (deploy/temporal/).
dev:
	BACKFLOW_DEV_TEMPORAL=$(or $(TEMPORAL),$(BACKFLOW_DEV_TEMPORAL),dev) ./scripts/dev.sh

# The same stack on a production-shaped Temporal: temporal-server with
# Postgres persistence and SQL visibility, and the Temporal UI server.
cluster:
	BACKFLOW_DEV_TEMPORAL=server ./scripts/dev.sh

# go vet and every test, integration tests included, against a Postgres and
# a Temporal this command starts: the dev server, or temporal-server with
# TEMPORAL=server (or BACKFLOW_TEST_TEMPORAL=server).
test:
	BACKFLOW_TEST_TEMPORAL=$(or $(TEMPORAL),$(BACKFLOW_TEST_TEMPORAL),dev) ./scripts/test.sh

# gofmt, go vet, staticcheck, a tidy go.mod and shellcheck on the scripts.
lint:
	./scripts/lint.sh

build:
	go build -o bin/backflow ./cmd/backflow

# The pinned tools: the Temporal CLI, stripe-mock, temporal-server, its SQL
# tool and the Temporal UI server.
tools:
	bash -c 'source scripts/lib.sh && ensure_temporal && ensure_stripe_mock && ensure_temporal_server'

# Throughput and latency of the refund path against the baseline workflow,
# on the dev server or, with TEMPORAL=server, on temporal-server; PROCS=2
# runs two API and two worker processes.
bench:
	BENCH_TEMPORAL=$(or $(TEMPORAL),$(BENCH_TEMPORAL),dev) BENCH_PROCS=$(or $(PROCS),$(BENCH_PROCS),1) ./scripts/bench.sh

# Mixed load with random faults for DURATION (default 2m), then the invariants.
soak:
	./scripts/soak.sh
