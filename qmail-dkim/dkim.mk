# qmail-dkim/: DKIM signing (lib/dkim.c holds the canonicalizer, the tag
# parser and the signer). Only what signs or makes keys links BearSSL's
# RSA and libsodium's Ed25519.
DKIM_LIBS := -lbearssl -lsodium
t-dkim_LIBS := $(DKIM_LIBS)
# dkimsign: a test helper that signs stdin with a key file, for the
# cross-verification against dkimpy (tests/t-dkim-verify.py). Built outside
# bin/ so that make install never installs it.
tests: $(BUILD)/testbin/dkimsign
$(BUILD)/testbin/dkimsign: $(BUILD)/tests/dkimsign.o $(BUILD)/libq.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DKIM_LIBS) $(LIBS)

# make fuzz-dkim: libFuzzer over the tag-list parser, the header splitter
# and both canonicalizers (tests/t-fuzz.sh runs a short one).
FUZZ_DKIM_SRCS := qmail-dkim/fuzz-dkim.c lib/dkim.c lib/str.c lib/base64.c
$(BUILD)/fuzz/fuzz-dkim: $(FUZZ_DKIM_SRCS) lib/dkim.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -Ilib \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_DKIM_SRCS) $(DKIM_LIBS)
fuzz-dkim: $(BUILD)/fuzz/fuzz-dkim
	@mkdir -p $(BUILD)/fuzz/corpus-dkim
	cp -n qmail-dkim/fuzz-corpus/* $(BUILD)/fuzz/corpus-dkim/ 2>/dev/null || true
	$(BUILD)/fuzz/fuzz-dkim -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -artifact_prefix=$(BUILD)/fuzz/dkim- $(BUILD)/fuzz/corpus-dkim
.PHONY: fuzz-dkim

# qmail-dkimkey: makes key pairs for the signer and prints the DNS record.
PROGS += qmail-dkimkey
qmail-dkimkey_SRCS := qmail-dkim/qmail-dkimkey.c
qmail-dkimkey_LIBS := $(DKIM_LIBS)

# qmail-dkim: the signer, a qmail-queue stage (setuid to the DKIM uid,
# 65-dkim.sh). It converts as qmail-remote would before signing, so it
# links qmail-remote's converter.
PROGS += qmail-dkim
STATIC += qmail-dkim
qmail-dkim_SRCS := qmail-dkim/qmail-dkim.c qmail-remote/mime8.c
qmail-dkim_LIBS := $(DKIM_LIBS)
