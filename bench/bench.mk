# Benchmarks (issue 8). Included from the root Makefile with
#   -include bench/bench.mk
#
# bench        short version of every scenario (< 5 min): tables on stdout,
#              JSON in bench/results/<scenario>.json
# bench-smoke  ~30 s idle check for make test: fails if an idle connection
#              costs more than 4 KiB of RSS or goroutines grow with N
# bench-full   the reference run recorded in bench/README.md (~12 min)
GO ?= go
BENCH_FLAGS ?=

.PHONY: bench bench-smoke bench-full

bench:
	$(GO) run ./bench -scenario all -size short $(BENCH_FLAGS)

bench-smoke:
	$(GO) run ./bench -scenario idle -size smoke $(BENCH_FLAGS)

bench-full:
	$(GO) run ./bench -scenario all -size full $(BENCH_FLAGS)
