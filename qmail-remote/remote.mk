# qmail-remote/: the outbound SMTP client. qmail-rspawn (resident, hands
# deliveries to resident workers that keep their connection) and qmail-remote (standalone, qmail-remote(8)-like)
# share the client code. DNS goes through lib/dns (glibc's libresolv). Both are
# dynamic executables: neither is exec'd per message.
REMOTE_CLIENT_SRCS := qmail-remote/deliver.c qmail-remote/routes.c qmail-remote/dane.c \
                      qmail-remote/smtpclient.c qmail-remote/mime8.c qmail-remote/ipme.c \
                      qmail-remote/mtasts.c qmail-remote/stspolicy.c
PROGS += qmail-rspawn qmail-remote
qmail-rspawn_SRCS := qmail-remote/qmail-rspawn.c qmail-remote/rworker.c qmail-remote/rjournal.c $(REMOTE_CLIENT_SRCS)
qmail-rspawn_LIBS := -lresolv
qmail-remote_SRCS := qmail-remote/qmail-remote.c $(REMOTE_CLIENT_SRCS)
qmail-remote_LIBS := -lresolv
t-remote_EXTRA := $(REMOTE_CLIENT_SRCS)
t-remote_LIBS := -lresolv
t-mime8_EXTRA := qmail-remote/mime8.c
t-dnssec_LIBS := -lresolv
t-dane-match_EXTRA := qmail-remote/dane.c
t-dane-match_LIBS := -lresolv -lbearssl
# make fuzz-remote: bounded libFuzzer campaigns over the two inputs the
# outbound side trusts least, DNS answers (fuzz-dns) and SMTP replies
# (fuzz-reply), FUZZ_SECONDS each (as make fuzz; tests/t-fuzz.sh
# runs a short one). Each target includes its source file, to reach the
# static parsers as they are.
FUZZ_DNS_SRCS := qmail-remote/fuzz-dns.c lib/buf.c lib/control.c lib/date.c lib/str.c
FUZZ_REPLY_SRCS := qmail-remote/fuzz-reply.c $(filter-out qmail-remote/smtpclient.c,$(REMOTE_CLIENT_SRCS)) lib/dns.c \
                   qmail-remote/tlsclient.c lib/base64.c lib/buf.c lib/control.c lib/hops.c lib/log.c \
                   lib/date.c lib/str.c lib/tlsio.c lib/tlspem.c lib/atomic.c lib/metrics.c
FUZZ_REMOTE_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Ilib -Iqmail-remote \
                     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzz/fuzz-dns: $(FUZZ_DNS_SRCS) lib/dns.c lib/dns.h | $(BUILD)/auto_prefix.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_REMOTE_FLAGS) -o $@ $(FUZZ_DNS_SRCS) $(BUILD)/auto_prefix.c -lresolv -lcdb
$(BUILD)/fuzz/fuzz-reply: $(FUZZ_REPLY_SRCS) qmail-remote/smtpclient.c qmail-remote/remote.h | $(BUILD)/auto_prefix.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_REMOTE_FLAGS) -o $@ $(FUZZ_REPLY_SRCS) $(BUILD)/auto_prefix.c -lresolv -lbearssl -lcdb
fuzz-remote: $(BUILD)/fuzz/fuzz-dns $(BUILD)/fuzz/fuzz-reply
	@for t in dns reply; do \
	  mkdir -p $(BUILD)/fuzz/corpus-$$t && \
	  { cp -n qmail-remote/fuzz-corpus-$$t/* $(BUILD)/fuzz/corpus-$$t/ 2>/dev/null; \
	    echo "fuzz-$$t:"; } && \
	  $(BUILD)/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    -artifact_prefix=$(BUILD)/fuzz/$$t- $(BUILD)/fuzz/corpus-$$t || exit 1; \
	done
.PHONY: fuzz-remote
# MTA-STS and TLS-RPT (mtasts.h): the delivery side in both front ends, the
# fetcher qmail-mtasts and the daily reporter qmail-tlsrpt.
PROGS += qmail-mtasts
qmail-mtasts_SRCS := qmail-remote/qmail-mtasts.c qmail-remote/stspolicy.c
qmail-mtasts_LIBS := -lresolv -lbearssl
PROGS += qmail-tlsrpt
qmail-tlsrpt_SRCS := qmail-remote/qmail-tlsrpt.c qmail-remote/stspolicy.c
qmail-tlsrpt_LIBS := -lresolv -lz
t-stspolicy_EXTRA := qmail-remote/stspolicy.c
# make fuzz-sts: a libFuzzer campaign over the MTA-STS policy and TXT
# grammar (qmail-mtasts's input), FUZZ_SECONDS long; not in make check.
FUZZ_STS_SRCS := qmail-remote/fuzz-sts.c qmail-remote/stspolicy.c lib/atomic.c lib/buf.c lib/control.c lib/str.c
$(BUILD)/fuzz/fuzz-sts: $(FUZZ_STS_SRCS) qmail-remote/mtasts.h | $(BUILD)/auto_prefix.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_REMOTE_FLAGS) -o $@ $(FUZZ_STS_SRCS) $(BUILD)/auto_prefix.c -lcdb
fuzz-sts: $(BUILD)/fuzz/fuzz-sts
	@mkdir -p $(BUILD)/fuzz/corpus-sts
	$(BUILD)/fuzz/fuzz-sts -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -artifact_prefix=$(BUILD)/fuzz/sts- $(BUILD)/fuzz/corpus-sts
.PHONY: fuzz-sts
