PROGS += qmail-queue qmail-queued
STATIC += qmail-queue qmail-queued
qmail-queue_SRCS := qmail-queue/qmail-queue.c qmail-queue/qwrite.c
qmail-queued_SRCS := qmail-queue/qmail-queued.c qmail-queue/qwrite.c qmail-queue/qpool.c qmail-queue/qsync.c
qmail-queue_LIBS := -lxxhash
qmail-queued_LIBS := -lxxhash
