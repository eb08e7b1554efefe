#ifndef AUTHLIB_H
#define AUTHLIB_H
/* Pure pieces of SMTP AUTH shared by qmail-smtpd (auth.c), the password
 * checker (qmail-authcheck) and the user database tool (qmail-passwd):
 * no I/O, no global state, so the unit test t-authlib drives them. */
#include <stddef.h>

#define AUTH_USER_MAX 255      /* bytes in a user name */
#define AUTH_PASS_MAX 255      /* bytes in a password */
/* The checkpassword interface (fd 3): at most 512 bytes of
 * "user\0password\0timestamp\0". */
#define AUTH_CP_MAX 512

/* 1 if u[0..n) may be a user name: 1 to AUTH_USER_MAX printable ASCII
 * characters other than space and ':' (the separator of users/authusers),
 * so a name is safe in a log line, a Received: comment and a text file. */
int authuser_ok(const char *u, size_t n);

/* Splits the checkpassword block b[0..n): "user\0password\0" followed by
 * an optional timestamp and its NUL, nothing after. 0, or -1 when
 * malformed (a missing NUL, an empty or bad user, an empty password). */
int cp_parse(const char *b, size_t n, const char **user, size_t *un,
             const char **pass, size_t *pn);

/* 1 if the C strings a and b are equal, in a time that depends only on
 * their lengths, never on where they first differ. */
int hash_equal(const char *a, const char *b);

#endif
