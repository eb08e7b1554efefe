# qmail-start (root, once) and qmail-send (the scheduler).
PROGS += qmail-start qmail-send
# Static: a resident scheduler without ld.so and the unused half of libc
# in its resident memory.
STATIC += qmail-send
qmail-start_SRCS := qmail-send/qmail-start.c
qmail-send_SRCS := qmail-send/qmail-send.c qmail-send/why.c qmail-send/sched.c qmail-send/dest.c qmail-send/rewrite.c qmail-send/dsn.c qmail-send/keep.c qmail-send/journal.c \
                   qmail-remote/routes.c
qmail-send_LIBS := -lresolv
t-send_EXTRA := qmail-send/sched.c qmail-send/dest.c qmail-send/rewrite.c qmail-send/dsn.c
t-send-dest_EXTRA := qmail-send/dest.c qmail-send/sched.c
t-send-keep_EXTRA := qmail-send/keep.c qmail-send/dest.c qmail-send/sched.c
# A dynamically linked qmail-send for the tests that step the wall clock
# under libfaketime, which cannot reach a static program. Not installed.
$(BUILD)/testbin/qmail-send: $(qmail-send_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/libq.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(qmail-send_LIBS) $(LIBS)
tests: $(BUILD)/testbin/qmail-send
