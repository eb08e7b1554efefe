# qmail-smtpd: the SMTP server, its unit tests and its fuzz target.
PROGS += qmail-smtpd
qmail-smtpd_SRCS := qmail-smtpd/smtpd.c qmail-smtpd/reply.c qmail-smtpd/rcpt.c \
                    qmail-smtpd/data.c qmail-smtpd/proto.c qmail-local/users.c \
                    qmail-local/rcptfind.c qmail-local/dotqmail.c qmail-send/rewrite.c
t-smtpd-proto_EXTRA := qmail-smtpd/proto.c

# make fuzz: a bounded libFuzzer campaign over the command, parameter,
# address and DATA/BDAT parsers (clang only). The corpus grows in a copy
# under $(BUILD), never in the seed directory.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_SRCS := qmail-smtpd/fuzz-smtpd.c qmail-smtpd/proto.c lib/addr.c lib/hops.c lib/str.c lib/dsnparam.c
$(BUILD)/fuzz/fuzz-smtpd: $(FUZZ_SRCS) qmail-smtpd/proto.h lib/addr.h lib/str.h lib/dsnparam.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -Ilib -Iqmail-smtpd \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_SRCS)
fuzz: $(BUILD)/fuzz/fuzz-smtpd
	@mkdir -p $(BUILD)/fuzz/corpus
	cp -n qmail-smtpd/fuzz-corpus/* $(BUILD)/fuzz/corpus/ 2>/dev/null || true
	$(BUILD)/fuzz/fuzz-smtpd -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -artifact_prefix=$(BUILD)/fuzz/ \
	  $(BUILD)/fuzz/corpus
.PHONY: fuzz
STATIC += qmail-smtpd

# qmail-smtpd's main is its own file, so that qmail-smtpd-listen (the
# resident listener: no tcpserver, no exec per connection) links the same
# session code; '=' picks up what later fragments add to qmail-smtpd_SRCS.
qmail-smtpd_SRCS += qmail-smtpd/qmail-smtpd.c
PROGS += qmail-smtpd-listen
qmail-smtpd-listen_SRCS = $(filter-out qmail-smtpd/qmail-smtpd.c,$(qmail-smtpd_SRCS)) \
                          qmail-smtpd/qmail-smtpd-listen.c qmail-smtpd/tcprules.c
STATIC += qmail-smtpd-listen
t-listen-rules_EXTRA := qmail-smtpd/tcprules.c
