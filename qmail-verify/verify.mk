# qmail-verify/: the inbound authentication stage (DKIM through
# lib/dkimverify.c, SPF's verdict from qmail-smtpd, one
# Authentication-Results header), run as the SMTP server's uid.
PROGS += qmail-verify
qmail-verify_SRCS := qmail-verify/qmail-verify.c qmail-verify/authres.c
qmail-verify_LIBS := -lbearssl -lsodium -lresolv
