PROGS += qmail-qfix
qmail-qfix_SRCS := qmail-send/qmail-qfix.c
