# TLS for the server (issue 6): qmail-tlsd holds the key and runs BearSSL,
# qmail-smtpd speaks STARTTLS through it (starttls.c, tlsctl.h).
PROGS += qmail-tlsd
qmail-tlsd_SRCS := qmail-smtpd/qmail-tlsd.c
qmail-tlsd_LIBS := -lbearssl
qmail-smtpd_SRCS += qmail-smtpd/starttls.c
# Exec'd per TLS connection: static, as qmail-smtpd.
STATIC += qmail-tlsd
