# SPF (lib/spf) in qmail-smtpd: checked at MAIL (mailspf.c), over lib/dns.
qmail-smtpd_SRCS += qmail-smtpd/mailspf.c
qmail-smtpd_LIBS += -lresolv
qmail-smtpd-listen_LIBS += -lresolv
qmail-tlsd_LIBS += -lresolv

# spfcheck: check_host() on stdin's cases, for tests/t-spf.py's comparison
# with pyspf. Built outside bin/ so that make install never installs it.
tests: $(BUILD)/testbin/spfcheck
$(BUILD)/testbin/spfcheck: $(BUILD)/tests/spfcheck.o $(BUILD)/libq.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lresolv $(LIBS)

# make fuzz-spf: libFuzzer over the record and macro parser and the
# evaluator, on records and answers the input itself serves
# (qmail-smtpd/fuzz-spf.c; tests/t-fuzz.sh runs a short campaign).
FUZZ_SPF_SRCS := qmail-smtpd/fuzz-spf.c lib/spf.c lib/str.c
$(BUILD)/fuzz/fuzz-spf: $(FUZZ_SPF_SRCS) lib/spf.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -Ilib \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_SPF_SRCS)
fuzz-spf: $(BUILD)/fuzz/fuzz-spf
	@mkdir -p $(BUILD)/fuzz/corpus-spf
	cp -n qmail-smtpd/fuzz-corpus-spf/* $(BUILD)/fuzz/corpus-spf/ 2>/dev/null || true
	$(BUILD)/fuzz/fuzz-spf -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -artifact_prefix=$(BUILD)/fuzz/spf- $(BUILD)/fuzz/corpus-spf
.PHONY: fuzz-spf
