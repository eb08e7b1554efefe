# make bench: this MTA against Postfix on this machine (bench/run; root).
# BENCH_ARGS=--quick for a short run.
BENCH_ARGS ?=

bench:
	sh bench/run $(BENCH_ARGS)

.PHONY: bench
