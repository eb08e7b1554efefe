# TLS for the server: qmail-tlsd holds the key and runs BearSSL,
# qmail-smtpd speaks STARTTLS through it (starttls.c, tlsctl.h).
qmail-smtpd_SRCS += qmail-smtpd/starttls.c
# qmail-tlsd runs the session itself in its forked child, with no exec of
# qmail-smtpd: it links qmail-smtpd's sources but its main, as
# qmail-smtpd-listen does ('=' picks up what later fragments add).
PROGS += qmail-tlsd
qmail-tlsd_SRCS = qmail-smtpd/qmail-tlsd.c qmail-smtpd/tlsd.c qmail-smtpd/tlscache.c \
                  $(filter-out qmail-smtpd/qmail-smtpd.c,$(qmail-smtpd_SRCS))
qmail-tlsd_LIBS += -lbearssl
# Exec'd per TLS connection: static, as qmail-smtpd.
STATIC += qmail-tlsd
# qmail-smtpd-listen -t: the same relay, resident (no tcpserver, no exec).
qmail-smtpd-listen_SRCS += qmail-smtpd/tlsd.c qmail-smtpd/tlscache.c
qmail-smtpd-listen_LIBS += -lbearssl
