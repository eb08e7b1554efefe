# Top-level build. Each program folder contributes *.mk fragments that append to
# PROGS and sets <prog>_SRCS; nothing else needs to change here to add one.
#
#   make                     build everything for PREFIX (default /var/qmail)
#   make check               build for the test prefix and run every test
#   make check-asan          the same under ASan+UBSan (clang)
#   make install PREFIX=DIR  install a complete instance (see service/install)
#   make run / make stop     the demo instance under ./var/demo

PREFIX   ?= /var/qmail
BUILD    ?= build
CC       ?= cc
SAN      ?=
OPT      ?= -O2 -g

WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter
HARDEN   := -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
CFLAGS   := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) $(SAN) -Ilib -I$(BUILD)
LDFLAGS  := -pie -Wl,-z,relro,-z,now $(SAN)
# Programs exec'd once per message link statically when no sanitizer is in
# use: a static binary starts without the dynamic loader's work.
STATIC_LDFLAGS := $(if $(SAN),$(LDFLAGS),-static-pie -Wl,-z,relro,-z,now)
LIBS     := -lcdb

PROGS    :=
SCRIPTS  :=
STATIC   :=
TESTPROGS :=

all: progs

include $(sort $(wildcard */*.mk))

LIB_SRCS := $(sort $(wildcard lib/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/auto_prefix.o
BINS     := $(PROGS:%=$(BUILD)/bin/%)

progs: $(BINS)

# The install prefix is compiled in (qmail's conf-home): privileged programs
# never take a path from the environment. The file is rewritten only when
# PREFIX changes, so switching prefixes relinks without recompiling.
$(BUILD)/auto_prefix.c: FORCE
	@mkdir -p $(@D)
	@printf 'const char auto_prefix[] = "%s";\n' '$(PREFIX)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/auto_prefix.o: $(BUILD)/auto_prefix.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libq.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

define prog_rule
$(BUILD)/bin/$(1): $$($(1)_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/libq.a
	@mkdir -p $$(@D)
	$$(CC) $$(if $$(filter $(1),$$(STATIC)),$$(STATIC_LDFLAGS),$$(LDFLAGS)) -o $$@ $$^ $$($(1)_LIBS) $$(LIBS)
endef
$(foreach p,$(PROGS) $(TESTPROGS),$(eval $(call prog_rule,$(p))))

TESTBINS := $(TESTPROGS:%=$(BUILD)/bin/%)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# --- tests -----------------------------------------------------------------
# The test instance lives under /tmp so that every test uid can reach it
# whatever the permissions of the directories above the checkout.
CHECK_ID     := $(shell printf %s '$(CURDIR)' | cksum | cut -d' ' -f1)
CHECK_PREFIX ?= /tmp/qmail-check-$(CHECK_ID)

deps:
	@sh .ci/install-deps

# Tests run CHECK_JOBS side by side (tests/run, TESTS_JOBS): mostly they
# wait on timeouts and peers, not on the CPU.
CHECK_JOBS ?= 2
ASAN_MAKE = $(MAKE) CC=clang BUILD=build-asan PREFIX=$(CHECK_PREFIX)-asan \
  SAN='-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer'

check: deps
	$(MAKE) BUILD=build-check PREFIX=$(CHECK_PREFIX) progs tests
	$(MAKE) -s BUILD=build-check PREFIX=$(CHECK_PREFIX) check-slots
	BUILD=build-check PREFIX=$(CHECK_PREFIX) TESTS_JOBS=$(CHECK_JOBS) tests/run

check-asan: deps
	$(ASAN_MAKE) progs tests
	$(ASAN_MAKE) -s check-slots
	BUILD=build-asan PREFIX=$(CHECK_PREFIX)-asan SANITIZED=1 ASAN_OPTIONS=detect_leaks=0 \
	  TESTS_JOBS=$(CHECK_JOBS) tests/run

# The several-hosts test at full size: 10,000 messages through the hub.
check-multihost: deps
	$(MAKE) BUILD=build-check PREFIX=$(CHECK_PREFIX) progs tests
	BUILD=build-check PREFIX=$(CHECK_PREFIX) MULTIHOST_MESSAGES=10000 tests/run t-multihost

# tests/run's slots 1..CHECK_JOBS-1: BUILD-jk holds the same objects as
# BUILD, relinked for PREFIX-jk (the prefix is compiled in).
check-slots:
	@k=1; while [ $$k -lt $(CHECK_JOBS) ]; do \
	  rm -rf $(BUILD)-j$$k && cp -a $(BUILD) $(BUILD)-j$$k && \
	  $(MAKE) -s BUILD=$(BUILD)-j$$k PREFIX=$(PREFIX)-j$$k progs tests >/dev/null || exit 1; \
	  k=$$((k + 1)); done

tests: $(TESTBINS)

# The installed programs (and scripts) and their sources, for tests/t-man.py.
print-progs:
	@echo $(sort $(PROGS) $(SCRIPTS))
print-srcs:
	@$(foreach p,$(sort $(PROGS)),echo '$(p): $($(p)_SRCS)';)

# --- install ---------------------------------------------------------------
install: progs
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' BUILD='$(BUILD)' sh service/install

clean:
	rm -rf build build-check build-check-j* build-asan build-asan-j* $(CHECK_PREFIX) $(CHECK_PREFIX)-j* $(CHECK_PREFIX)-asan $(CHECK_PREFIX)-asan-j*

.PHONY: all progs deps check check-asan check-slots check-multihost tests install clean FORCE print-progs print-srcs
