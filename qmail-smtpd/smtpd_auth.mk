# SMTP AUTH: the exchange in qmail-smtpd (auth.c), the password
# checker qmail-authcheck (setuid to the auth uid, libcrypt) and the user
# database tool qmail-passwd. libcrypt links dynamically: its static
# archive pulls in what static-pie cannot take.
PROGS += qmail-authcheck qmail-passwd
qmail-authcheck_SRCS := qmail-smtpd/qmail-authcheck.c qmail-smtpd/authlib.c
qmail-authcheck_LIBS := -lcrypt
qmail-passwd_SRCS := qmail-smtpd/qmail-passwd.c qmail-smtpd/authlib.c
qmail-passwd_LIBS := -lcrypt
qmail-smtpd_SRCS += qmail-smtpd/auth.c qmail-smtpd/authlib.c
t-authlib_EXTRA := qmail-smtpd/authlib.c
