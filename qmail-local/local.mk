# Local delivery: qmail-lspawn (root spawner, delivers in resident workers
# of each uid, without exec), qmail-local (the same delivery as a standalone
# program), qmail-newu (users/assign -> users/cdb).
LOCAL_DELIVER_SRCS := qmail-local/deliver.c qmail-local/dotqmail.c qmail-local/msg.c \
                      qmail-local/maildir.c qmail-local/mbox.c qmail-local/prog.c

PROGS += qmail-lspawn qmail-local qmail-newu qmail-newaliases
qmail-lspawn_SRCS := qmail-local/qmail-lspawn.c qmail-local/users.c qmail-local/rcptfind.c qmail-local/job.c \
                     qmail-local/worker.c $(LOCAL_DELIVER_SRCS)
qmail-local_SRCS := qmail-local/qmail-local.c $(LOCAL_DELIVER_SRCS)
qmail-newu_SRCS := qmail-local/qmail-newu.c qmail-local/users.c
qmail-newaliases_SRCS := qmail-local/qmail-newaliases.c qmail-local/aliases.c

t-local-job_EXTRA := qmail-local/job.c
t-local-dotqmail_EXTRA := qmail-local/dotqmail.c
t-local-maildir_EXTRA := qmail-local/maildir.c qmail-local/msg.c
t-local-msg_EXTRA := qmail-local/msg.c
t-local-users_EXTRA := qmail-local/users.c
t-local-aliases_EXTRA := qmail-local/aliases.c
t-local-rcptfind_EXTRA := qmail-local/rcptfind.c qmail-local/users.c qmail-local/dotqmail.c
