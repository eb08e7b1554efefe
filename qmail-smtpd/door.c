/* Greylisting and the AUTH failure lockout: the session's side of
 * qmail-smtpd-state (stateproto.h). See door.h.
 *
 * Keys. Greylisting's client is its network, IPv4 /24 or IPv6 /64, as
 * Postgrey's: a sender's pool of outbound hosts retries from another
 * address of the same network. AUTH failures count per IPv4 address and
 * per IPv6 /64 (one host holds a whole /64), and so do unknown
 * recipients. Sender and recipient are
 * lowercased; a byte the protocol cannot carry becomes '?'.
 *
 * The service down: the client is let through, and logged (event=state),
 * so that a crash of a convenience never stops mail (SECURITY); the
 * session then asks no more. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth.h"
#include "control.h"
#include "dns.h"
#include "door.h"
#include "log.h"
#include "smtpd.h"
#include "stateproto.h"

#define STATE_TIMEOUT 2          /* seconds per request */

static int loaded;
static unsigned long gl_delay, gl_window, gl_expiry, gl_clients;
static unsigned long auth_max, auth_window;
static unsigned long rcpt_max, rcpt_window;
static str gl_skip;             /* control/greylistskip lines */

static void load(void)
{
  if (loaded) return;
  loaded = 1;
  /* A malformed value turns the feature off (greylisting) or keeps the
   * default (AUTH): never a refused session. */
  if (control_ulong(&gl_delay, "control/greylist", 0) < 0) gl_delay = 0;
  if (control_ulong(&gl_window, "control/greylistwindow", 2 * 86400) < 0) gl_window = 2 * 86400;
  if (control_ulong(&gl_expiry, "control/greylistexpiry", 35 * 86400) < 0) gl_expiry = 35 * 86400;
  if (control_ulong(&gl_clients, "control/greylistclients", 5) < 0) gl_clients = 5;
  if (control_lines(&gl_skip, "control/greylistskip") < 0) gl_skip.len = 0;
  if (control_ulong(&auth_max, "control/authmaxfail", 10) < 0) auth_max = 10;
  if (control_ulong(&auth_window, "control/authfailwindow", 600) < 0) auth_window = 600;
  if (control_ulong(&rcpt_max, "control/rcptfailmax", 100) < 0) rcpt_max = 100;
  if (control_ulong(&rcpt_window, "control/rcptfailwindow", 600) < 0) rcpt_window = 600;
}

/* The client's address as a key: an IPv6 one's /64, an IPv4 one's
 * first v4bits (24 or 32). 0, or -1 when the address is unknown. */
static int netkey(str *key, int v4bits)
{
  struct raddr a;
  char b[INET6_ADDRSTRLEN];
  unsigned char x[16];
  const char *suffix = v4bits == 24 ? "/24" : "";

  if (!ip_parse(ss.remoteip, &a)) return -1;
  if (a.sa.ss_family == AF_INET6) {
    memcpy(x, ((struct sockaddr_in6 *)&a.sa)->sin6_addr.s6_addr, 16);
    if (!memcmp(x, "\0\0\0\0\0\0\0\0\0\0\377\377", 12)) {
      if (v4bits == 24) x[15] = 0;
      if (!inet_ntop(AF_INET, x + 12, b, sizeof b)) return -1;
    } else {
      memset(x + 8, 0, 8);
      suffix = "/64";
      if (!inet_ntop(AF_INET6, x, b, sizeof b)) return -1;
    }
  } else {
    memcpy(x, &((struct sockaddr_in *)&a.sa)->sin_addr, 4);
    if (v4bits == 24) x[3] = 0;
    if (!inet_ntop(AF_INET, x, b, sizeof b)) return -1;
  }
  key->len = 0;
  if (str_cats(key, b) < 0 || str_cats(key, suffix) < 0) quit(1, "nomem");
  return 0;
}

static void catkey(str *req, const char *s, size_t n)
{
  size_t i;
  if (str_catc(req, ' ') < 0) quit(1, "nomem");
  if (!n && str_catc(req, '-') < 0) quit(1, "nomem");      /* the null sender */
  for (i = 0; i < n && i < STATE_KEY_MAX; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
    if (c <= ' ' || c == 0x7f) c = '?';
    if (str_catc(req, (char)c) < 0) quit(1, "nomem");
  }
}

static void catnum(str *req, unsigned long v)
{
  if (str_catc(req, ' ') < 0 || str_catu(req, v) < 0) quit(1, "nomem");
}

/* Sends req; the answer in rep, or -1 after logging that the service
 * could not be asked. */
static int ask(const str *req, char *rep, size_t max)
{
  static int down;              /* once per session: a hung service costs one timeout */
  int r;

  if (down) return -1;
  r = state_ask(req->s, req->len, rep, max, STATE_TIMEOUT);
  if (r < 0) down = 1;
  if (r < 0 || !strncmp(rep, "ERR", 3)) {
    log_begin(PROG, "state");
    log_kv("ip", ss.remoteip);
    log_kv("result", "unavailable");
    if (r < 0) log_kv("errno", strerror(errno));
    else log_kv("reply", rep);
    log_end();
    return -1;
  }
  return r;
}

/* 1 when SPF passed this transaction's sender (mailspf.c's SPF_RESULT
 * and SPF_DOMAIN, set afresh at every MAIL) for a domain that
 * control/greylistskip names, or for any domain when it holds "*": a
 * sender the domain's owner vouches for retries like a real MTA anyway.
 * DKIM is verified only after DATA, too late for RCPT. */
static int spf_skip(void)
{
  const char *r = getenv("SPF_RESULT"), *d = getenv("SPF_DOMAIN");
  size_t i;

  if (!gl_skip.len || !r || !d || strcmp(r, "pass")) return 0;
  for (i = 0; i < gl_skip.len; i += strlen(gl_skip.s + i) + 1)
    if (!strcmp(gl_skip.s + i, "*")) return 1;
  return domain_in_list(&gl_skip, d, strlen(d));
}

const char *door_greylist(const char *sender, size_t sn, const char *rcpt, size_t rn)
{
  static str req, net;
  static char line[100];
  char rep[STATE_REP_MAX];
  unsigned long long left;

  load();
  if (!gl_delay || ss.relayclient || ss.authed || dnsbl_allowed()) return 0;
  if (netkey(&net, 24) < 0) return 0;
  if (spf_skip()) {
    log_begin(PROG, "greylist");
    log_kv("ip", ss.remoteip);
    log_kb("from", sender, sn);
    log_kb("to", rcpt, rn);
    log_kv("result", "spfskip");
    log_end();
    return 0;
  }
  req.len = 0;
  if (str_cats(&req, "G") < 0) quit(1, "nomem");
  catnum(&req, gl_delay);
  catnum(&req, gl_window);
  catnum(&req, gl_expiry);
  catnum(&req, gl_clients);
  catkey(&req, net.s, net.len);
  catkey(&req, sender, sn);
  catkey(&req, rcpt, rn);
  if (ask(&req, rep, sizeof rep) < 0) return 0;
  log_begin(PROG, "greylist");
  log_kv("ip", ss.remoteip);
  log_kb("from", sender, sn);
  log_kb("to", rcpt, rn);
  log_kv("result", rep);
  log_end();
  if (strncmp(rep, "WAIT ", 5)) return 0;
  if (scan_ulong(rep + 5, strlen(rep + 5), &left) < 0) left = gl_delay;
  snprintf(line, sizeof line, "451 4.7.1 greylisted: this server delays mail from new senders, "
           "please try again in %llu seconds", left);
  return line;
}

static int authkey(str *key) { return netkey(key, 32); }

int door_auth_locked(void)
{
  static str req, key;
  char rep[STATE_REP_MAX];

  load();
  if (!auth_max || authkey(&key) < 0) return 0;
  req.len = 0;
  if (str_cats(&req, "A") < 0) quit(1, "nomem");
  catnum(&req, auth_window);
  catnum(&req, auth_max);
  catkey(&req, key.s, key.len);
  if (ask(&req, rep, sizeof rep) < 0) return 0;
  return !strncmp(rep, "LOCK", 4);
}

void door_auth_result(int ok)
{
  static str req, key;
  char rep[STATE_REP_MAX];

  load();
  if (!auth_max || authkey(&key) < 0) return;
  req.len = 0;
  if (str_cats(&req, ok ? "S" : "F") < 0) quit(1, "nomem");
  if (!ok) catnum(&req, auth_window);
  catkey(&req, key.s, key.len);
  (void)ask(&req, rep, sizeof rep);
}

/* The request "<verb> window max addr" about unknown recipients; 1 when
 * the answer is LOCK, with the count in *count. */
static int rcpt_ask(const char *verb, unsigned long long *count)
{
  static str req, key;
  char rep[STATE_REP_MAX];

  load();
  *count = 0;
  if (!rcpt_max || ss.relayclient || ss.authed || dnsbl_allowed() || authkey(&key) < 0) return 0;
  req.len = 0;
  if (str_cats(&req, verb) < 0) quit(1, "nomem");
  catnum(&req, rcpt_window);
  catnum(&req, rcpt_max);
  catkey(&req, key.s, key.len);
  if (ask(&req, rep, sizeof rep) < 0) return 0;
  {
    const char *sp = strchr(rep, ' ');
    if (!sp || scan_ulong(sp + 1, strlen(sp + 1), count) < 0) *count = 0;
  }
  return !strncmp(rep, "LOCK ", 5);
}

int door_rcpt_locked(void)
{
  unsigned long long n;
  return rcpt_ask("R", &n);
}

int door_rcpt_unknown(void)
{
  unsigned long long n;
  if (!rcpt_ask("U", &n)) return 0;
  /* One line per episode: only the recipient that reached the limit
   * gets a count equal to it (the service answers one at a time). */
  if (n == rcpt_max) {
    log_begin(PROG, "dictionary");
    log_kv("ip", ss.remoteip);
    log_ku("unknown", n);
    log_ku("window", rcpt_window);
    log_end();
  }
  return 1;
}
