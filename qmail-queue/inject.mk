# qmail-inject and sendmail: both are thin option parsers over the one
# injector in inject*.c.
INJECT_SRCS := qmail-queue/inject.c qmail-queue/inject-qq.c
PROGS += qmail-inject sendmail
qmail-inject_SRCS := qmail-queue/qmail-inject.c $(INJECT_SRCS)
sendmail_SRCS := qmail-queue/sendmail.c $(INJECT_SRCS)
