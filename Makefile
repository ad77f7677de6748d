# roomcast: `make build`, `make test` (everything CI runs), `make bench`.
SHELL := /bin/bash
GO ?= go
BIN := bin
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck
FUZZTIME ?= 10s

.PHONY: all build test lint unit e2e fuzz js js-e2e bench bench-smoke demo clean

all: build

build:
	$(GO) build -o $(BIN)/roomcast-node ./cmd/node
	$(GO) build -o $(BIN)/roomcast-mint ./cmd/mint

# test is what CI runs (.ci/run calls exactly this).
test: lint unit fuzz bench-smoke js js-e2e check-deploy
	@echo "make test: all suites passed"

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) ./...

# unit runs every Go test, e2e included (they build and start real
# roomcast-node processes, themselves built with -race, against real NATS),
# with the race detector.
unit:
	ROOMCAST_E2E_RACE=1 $(GO) test -race -count=1 -timeout 20m ./...

# Short fuzz runs of every fuzz target; longer runs: make fuzz FUZZTIME=10m.
# A failing input is written to testdata/fuzz and replayed by the second
# run, so a real finding fails twice; a fuzzing-engine hiccup (a worker that
# misses its deadline on a loaded machine) passes the second time.
fuzz:
	@set -e; log=$$(mktemp); for pkg in $$($(GO) list ./pkg/...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    if ! $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1; then \
	      cat $$log; echo "fuzz $$t failed; running it again"; \
	      $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || { rm -f $$log; exit 1; }; \
	    fi; \
	  done; \
	done; rm -f $$log

# JS unit tests (Vitest) run against real roomcast-node processes with
# embedded NATS: no mock of the node or of NATS.
js: build
	cd clients/js && npm ci --no-audit --no-fund && npm run check && npm run build && ROOMCAST_NODE_BIN=$(CURDIR)/bin/roomcast-node npm test
	@# The demo page the node embeds is committed built: it must match its source.
	cd clients/js && npm run build:demo >/dev/null
	@git diff --quiet -- pkg/demo/dist || { git diff --stat -- pkg/demo/dist; echo "pkg/demo/dist is stale: run make demo and commit it"; exit 1; }
	cd examples/sveltekit && npm ci --no-audit --no-fund && npm run check

# Browser tests: Debian's Chromium (never a downloaded browser) driven by
# playwright-core against real roomcast-node processes.
js-e2e: js
	cd clients/js && ROOMCAST_NODE_BIN=$(CURDIR)/bin/roomcast-node npm run e2e

# Rebuild the demo page embedded in the node (committed, so `go run
# ./cmd/node` needs no npm).
demo:
	$(GO) generate ./pkg/demo

clean:
	rm -rf $(BIN)

-include deploy/check.mk
-include bench/bench.mk
-include e2e/soak.mk
