# STARTTLS for the SMTP client: policies and the BearSSL client
# in tlsclient.c, linked into both front ends and the unit test.
qmail-rspawn_SRCS += qmail-remote/tlsclient.c
qmail-remote_SRCS += qmail-remote/tlsclient.c
t-remote_EXTRA += qmail-remote/tlsclient.c
qmail-rspawn_LIBS += -lbearssl
qmail-remote_LIBS += -lbearssl
t-remote_LIBS += -lbearssl
