#ifndef SMTPD_AUTH_H
#define SMTPD_AUTH_H
/* SMTP AUTH (RFC 4954) for qmail-smtpd: auth.c. */
#include "addr.h"

/* AUTH goes in the EHLO reply: the user database exists and the session
 * is under TLS, or on loopback with control/authloopback "1". */
int auth_offered(void);
void smtp_auth(const char *arg, size_t n);
/* The authenticated user (a C string), or NULL. */
const char *auth_user(void);
/* At MAIL: NULL when the sender may be used, else the reply, with *why
 * for the log. SMTPD_AUTH=required (submission) refuses any MAIL before
 * AUTH; control/authsenders.cdb, when present, limits an authenticated
 * user's envelope senders. */
const char *auth_mail_check(const addr *a, const char **why);

#endif
