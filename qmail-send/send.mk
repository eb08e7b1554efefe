# qmail-start (root, once) and qmail-send (the scheduler).
PROGS += qmail-start qmail-send
# Static: a resident scheduler without ld.so and the unused half of libc
# in its resident memory.
STATIC += qmail-send
qmail-start_SRCS := qmail-send/qmail-start.c
qmail-send_SRCS := qmail-send/qmail-send.c qmail-send/sched.c qmail-send/dest.c qmail-send/rewrite.c qmail-send/dsn.c
t-send_EXTRA := qmail-send/sched.c qmail-send/dest.c qmail-send/rewrite.c qmail-send/dsn.c
t-send-dest_EXTRA := qmail-send/dest.c qmail-send/sched.c
