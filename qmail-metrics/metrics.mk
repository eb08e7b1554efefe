# qmail-metrics: the counters of PREFIX/metrics/ and a count of the queue
# in the Prometheus text format (a file, or one HTTP request under
# tcpserver). It counts the queue with qmail-qstat's code (qtool.c).
PROGS += qmail-metrics
qmail-metrics_SRCS := qmail-metrics/qmail-metrics.c qmail-send/qtool.c qmail-send/rewrite.c
