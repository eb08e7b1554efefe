# qmail-verify/: the inbound authentication stage (DKIM through
# lib/dkimverify.c, SPF's verdict from qmail-smtpd, one
# Authentication-Results header), run as the SMTP server's uid.
PROGS += qmail-verify
qmail-verify_SRCS := qmail-verify/qmail-verify.c qmail-verify/authres.c
qmail-verify_LIBS := -lbearssl -lsodium -lresolv

# make fuzz-verify: libFuzzer over the verifier's signature and key-record
# parsers, its header hashing, and the authserv-id parser (tests/t-fuzz.sh
# runs a short one).
FUZZ_VERIFY_SRCS := qmail-verify/fuzz-verify.c qmail-verify/authres.c lib/dkimverify.c lib/dkim.c \
  lib/str.c lib/base64.c
$(BUILD)/fuzz/fuzz-verify: $(FUZZ_VERIFY_SRCS) lib/dkim.h lib/dkimverify.h qmail-verify/authres.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -Ilib -Iqmail-verify \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_VERIFY_SRCS) -lbearssl -lsodium
fuzz-verify: $(BUILD)/fuzz/fuzz-verify
	@mkdir -p $(BUILD)/fuzz/corpus-verify
	cp -n qmail-verify/fuzz-corpus/* $(BUILD)/fuzz/corpus-verify/ 2>/dev/null || true
	$(BUILD)/fuzz/fuzz-verify -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  -artifact_prefix=$(BUILD)/fuzz/verify- $(BUILD)/fuzz/corpus-verify
.PHONY: fuzz-verify

# tests/unit/t-dkimverify: the verifier and the authserv-id parser.
t-dkimverify_EXTRA := qmail-verify/authres.c
t-dkimverify_LIBS := -lbearssl -lsodium
