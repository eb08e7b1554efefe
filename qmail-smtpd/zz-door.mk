# The door (qmail-smtpd/door.h): DNS block- and allowlists, greylisting
# and the AUTH lockout in every program that runs the session, and
# qmail-smtpd-state, the resident keeper of what sessions share. Named
# to come after tls.mk, whose LIBS it extends.
SESSION_DOOR_SRCS := qmail-smtpd/dnsbl.c qmail-smtpd/door.c qmail-smtpd/stateclient.c
qmail-smtpd_SRCS += $(SESSION_DOOR_SRCS)
qmail-smtpd_LIBS += -lresolv
qmail-smtpd-listen_LIBS += -lresolv
qmail-tlsd_LIBS += -lresolv
PROGS += qmail-smtpd-state
qmail-smtpd-state_SRCS := qmail-smtpd/qmail-smtpd-state.c
qmail-smtpd-state_LIBS := -lxxhash
