PROGS += qmail-queue
STATIC += qmail-queue
qmail-queue_SRCS := qmail-queue/qmail-queue.c qmail-queue/qwrite.c
