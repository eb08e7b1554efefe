# qmail-remote/: the outbound SMTP client. qmail-rspawn (resident, hands
# deliveries to resident workers that keep their connection) and qmail-remote (standalone, qmail-remote(8)-like)
# share the client code. DNS goes through glibc's libresolv. Both are
# dynamic executables: neither is exec'd per message.
REMOTE_CLIENT_SRCS := qmail-remote/deliver.c qmail-remote/dns.c qmail-remote/routes.c \
                      qmail-remote/smtpclient.c
PROGS += qmail-rspawn qmail-remote
qmail-rspawn_SRCS := qmail-remote/qmail-rspawn.c qmail-remote/rworker.c qmail-remote/rjournal.c $(REMOTE_CLIENT_SRCS)
qmail-rspawn_LIBS := -lresolv
qmail-remote_SRCS := qmail-remote/qmail-remote.c $(REMOTE_CLIENT_SRCS)
qmail-remote_LIBS := -lresolv
t-remote_EXTRA := $(REMOTE_CLIENT_SRCS)
t-remote_LIBS := -lresolv
