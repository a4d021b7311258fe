.PHONY: dev test build tools migrate

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
