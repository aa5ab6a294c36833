GO ?= go
# Extra flags for benchall, e.g. BENCHFLAGS="-duration 3s -warmup 1s -delivery 5s" for a smoke run.
BENCHFLAGS ?=

.PHONY: build test lint bench bench-postgres soak fuzz ci

build:
	$(GO) build -o capirelay ./cmd/capirelay

test:
	$(GO) test ./...

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...

# 7-10 minutes on an idle 2-CPU machine (the upper end while delivery lags
# ingest: drains wait up to 2.5 min): realistic phases, identity off, a 60 s
# delivery run, half rates, the best case, the SDK, a CPU profile.
bench:
	$(GO) run ./bench/cmd/benchall -out bench/results $(BENCHFLAGS)

# Realistic /v1/events on one and two relay nodes sharing a scratch
# database created (and dropped) on the server of CAPIRELAY_TEST_DATABASE_URL.
bench-postgres:
	@test -n "$$CAPIRELAY_TEST_DATABASE_URL" || { echo "set CAPIRELAY_TEST_DATABASE_URL=postgres://…" >&2; exit 2; }
	$(GO) run ./bench/cmd/benchall -postgres "$$CAPIRELAY_TEST_DATABASE_URL" -out bench/results $(BENCHFLAGS)

soak:
	$(GO) run ./bench/cmd/soak -duration 10m

fuzz:
	bash bench/fuzz.sh 30s

ci:
	bash .ci/run
