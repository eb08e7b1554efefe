# make bench: this MTA against Postfix on this machine (bench/run; root).
# BENCH_ARGS=--quick for a short run.
BENCH_ARGS ?=

bench:
	sh bench/run $(BENCH_ARGS)

.PHONY: bench

# make bench-dkim: CPU per message of DKIM signing against the unsigned
# path (bench/dkim.py, writes bench/DKIM.md; root, an instance under the
# check prefix).
bench-dkim:
	$(MAKE) BUILD=build-check PREFIX=$(CHECK_PREFIX) progs tests
	BUILD=build-check PREFIX=$(CHECK_PREFIX) python3 bench/dkim.py

.PHONY: bench-dkim
