# The two commands of the README: `make run` sets up and serves on
# 127.0.0.1:8080 with a local ./data store; `make test` sets up and runs
# every test.

GO ?= go
export CGO_ENABLED = 1

.PHONY: run build test check fuzz bench bench-delivery setup generate clean forwarder

run: setup build
	LOG_FORMAT=$${LOG_FORMAT:-console} ./bin/server

build:
	$(GO) build -trimpath -o bin/server ./cmd/server

setup:
	@./scripts/setup.sh

# The S3 tests run against a real MinIO server, the forwarder's under
# AWS's Lambda emulator, the queue's against goaws; scripts/tools.sh builds
# them once (a few minutes) into ~/.cache/resizer. A package unchanged
# since its last passing run answers from Go's test cache ("(cached)");
# `make test TESTFLAGS=-count=1` runs every test again, as CI does. The
# slowest packages take 5 to 6 minutes on 2 busy cores with the race
# detector, near go test's default limit of 10.
TESTFLAGS ?=
test:
	@./scripts/setup.sh test
	MINIO_BIN=$$(./scripts/tools.sh minio) RIE_BIN=$$(./scripts/tools.sh rie) GOAWS_BIN=$$(./scripts/tools.sh goaws) \
		$(GO) test -race -timeout 30m $(TESTFLAGS) ./...

# Static checks, and that the generated files are up to date: api/ from
# openapi.yaml, Swagger UI's files from npm at their pinned version.
check: setup
	test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) generate ./...
	git diff --exit-code -- api/ internal/httpapi/web/swagger/ || { echo "generated files are stale: run go generate ./... and commit"; exit 1; }

# Each fuzz target for a short, fixed time (FUZZTIME), as CI runs them:
# every func FuzzXxx in a _test.go file, found rather than listed. Go
# 1.26's fuzzing coordinator can fail a target as its time runs out with a
# bare "context deadline exceeded", having found nothing (a race in the
# coordinator, go.dev/issue/75804, fixed in Go 1.27): the fuzz runs use Go
# 1.27.3, which the go command fetches once from the module proxy.
# New inputs are shrunk for at most 5 s (not Go's 60 s): the targets that
# decode an image in their check would spend a short run shrinking.
FUZZTIME ?= 15s
FUZZ_GO ?= env GOTOOLCHAIN=go1.27.3 $(GO)
fuzz: setup
	@grep -rH '^func Fuzz[A-Za-z0-9_]*(' --include='*_test.go' . | sed 's/(.*//; s/:func /:/' | sort | \
	while IFS=: read -r file name; do \
		echo "== fuzz $$(dirname $$file) $$name"; \
		$(FUZZ_GO) test $$(dirname $$file) -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s || exit 1; \
	done

# The load run of docs/benchmarks.md (needs wrk: apt-get install wrk).
bench: setup build
	./scripts/bench.sh

# Delivery by URL: hits, misses against POST /resize (docs/benchmarks.md).
bench-delivery: setup build
	./scripts/delivery-bench.sh

generate:
	$(GO) generate ./...

# The Lambda forwarder: a static "bootstrap" for runtime provided.al2023,
# zipped for amd64 (the template's default) and arm64 (Graviton).
forwarder:
	@for arch in arm64 amd64; do \
		mkdir -p dist/forwarder-$$arch && \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' \
			-o dist/forwarder-$$arch/bootstrap ./cmd/forwarder && \
		rm -f dist/forwarder-$$arch.zip && (cd dist/forwarder-$$arch && zip -q -X ../forwarder-$$arch.zip bootstrap) && \
		echo "dist/forwarder-$$arch.zip" || exit 1; \
	done

clean:
	rm -rf bin dist
