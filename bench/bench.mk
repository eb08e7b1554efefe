# make bench: this MTA against Postfix on this machine (bench/run; root).
# BENCH_ARGS=--quick for a short run.
BENCH_ARGS ?=

bench:
	sh bench/run $(BENCH_ARGS)

# make bench-cpu: CPU per session or message of this MTA's own paths
# (listener, STARTTLS, relay with reuse), on the make check instance;
# figures printed, nothing asserted but that every session went through.
BENCH_CPU := bench/cpu-listen.py bench/cpu-tls.py bench/cpu-remote-reuse.py

bench-cpu:
	$(MAKE) BUILD=build-check PREFIX=$(CHECK_PREFIX) progs tests
	@for s in $(BENCH_CPU); do echo "== $$s"; \
	  BUILD=build-check PREFIX=$(CHECK_PREFIX) python3 $$s || exit 1; done

.PHONY: bench bench-cpu

# make bench-dkim: CPU per message of DKIM signing against the unsigned
# path (bench/dkim.py, writes bench/DKIM.md; root, an instance under the
# check prefix).
bench-dkim:
	$(MAKE) BUILD=build-check PREFIX=$(CHECK_PREFIX) progs tests
	BUILD=build-check PREFIX=$(CHECK_PREFIX) python3 bench/dkim.py

.PHONY: bench-dkim

# make bench-idle: memory and descriptors of qmail-smtpd-listen with 1,000
# idle connections, from 1,000 addresses and from one (bench/idle-listen.py;
# one run's figures are in bench/RESULTS.md).
bench-idle:
	$(MAKE) BUILD=build-check PREFIX=$(CHECK_PREFIX) progs tests
	BUILD=build-check PREFIX=$(CHECK_PREFIX) python3 bench/idle-listen.py

.PHONY: bench-idle

# make bench-scale: the scale row at a million queued messages, this MTA's
# scheduler against Postfix's qmgr (bench/scale.py through bench/run;
# root; it takes long: the queue is written twice, once per MTA).
# BENCH_SCALE=200000 for a shorter one; BENCH_SCALE_ARGS=--window=N sets
# control/queuewindow (a small window shows the bound with a short queue).
BENCH_SCALE ?= 1000000
BENCH_SCALE_ARGS ?=

bench-scale:
	BENCH_PY=bench/scale.py sh bench/run --count $(BENCH_SCALE) $(BENCH_SCALE_ARGS)

.PHONY: bench-scale

# make bench-smoke: the peers bench/run measures beside this MTA (Exim and
# OpenSMTPD from their unpacked Debian packages) start with the bench's
# configuration and take one message each, local and relayed (root; no
# timing; bench/smoke.py).
bench-smoke:
	sh bench/run --smoke

.PHONY: bench-smoke
