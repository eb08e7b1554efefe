# qmail-qdest: the operator's request to reset one destination's backoff
# (it shares dest.c's check of a domain name with qmail-send).
PROGS += qmail-qdest
qmail-qdest_SRCS := qmail-send/qmail-qdest.c qmail-send/dest.c
t-send-qdest_EXTRA := qmail-send/dest.c
