GO ?= go

.PHONY: build test lint bench soak fuzz ci

build:
	$(GO) build -o capirelay ./cmd/capirelay

test:
	$(GO) test ./...

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...

bench:
	$(GO) run ./bench/cmd/benchall -out bench/results

soak:
	$(GO) run ./bench/cmd/soak -duration 10m

fuzz:
	bash bench/fuzz.sh 30s

ci:
	bash .ci/run
