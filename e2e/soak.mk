# Soak and chaos runs of the e2e suite (RELIABILITY.md).
# Included from the root Makefile:  -include e2e/soak.mk
#
# `make soak` churns 2,000 clients over three real nodes for SOAK (default
# 2m) and checks that nothing leaks and nothing is lost; `go test ./e2e`
# runs the same test for 20 s. `make chaos` runs the chaos tests alone.
# Both print their measured figures on lines starting with FIGURE.
#   make soak SOAK=10m SOAK_CLIENTS=5000

GO ?= go
SOAK ?= 2m
SOAK_CLIENTS ?= 2000

.PHONY: soak chaos
soak:
	ROOMCAST_SOAK=$(SOAK) ROOMCAST_SOAK_CLIENTS=$(SOAK_CLIENTS) \
	  $(GO) test -count=1 -timeout 30m -run '^TestSoak$$' -v ./e2e

chaos:
	$(GO) test -count=1 -timeout 15m -run '^TestChaos' -v ./e2e
